package secret

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, KeySize)
	b, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte(`{"token":"s3cret"}`)
	s1, s2 := b.Seal(secret, "src1"), b.Seal(secret, "src1")
	if bytes.Equal(s1, s2) || bytes.Contains(s1, []byte("s3cret")) {
		t.Fatal("sealing is not randomised, or leaks the plaintext")
	}
	if got, err := b.Open(s1, "src1"); err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q, %v", got, err)
	}
	if _, err := b.Open(s1, "src2"); !errors.Is(err, ErrWrongKey) {
		t.Fatalf("opened under another source: %v", err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	if _, err := other.Open(s1, "src1"); !errors.Is(err, ErrWrongKey) || other.KeyID() == b.KeyID() {
		t.Fatalf("opened with another key: %v", err)
	}
	flipped := bytes.Clone(s1)
	flipped[len(flipped)-1] ^= 1
	for _, bad := range [][]byte{flipped, nil, {1, 2, 3}, append([]byte{9}, s1[1:]...)} {
		if _, err := b.Open(bad, "src1"); err == nil {
			t.Fatalf("opened %x", bad)
		}
	}
	if _, err := New([]byte("short")); err == nil {
		t.Fatal("a short key was accepted")
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "secret.key")
	k1, created, err := LoadOrCreate(path)
	if err != nil || !created || len(k1) != KeySize {
		t.Fatalf("create: %v %v", created, err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", fi.Mode().Perm())
	}
	k2, created, err := LoadOrCreate(path)
	if err != nil || created || !bytes.Equal(k1, k2) {
		t.Fatalf("load: %v %v", created, err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadOrCreate(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Fatalf("a world-readable key file: %v", err)
	}
	for _, s := range []string{strings.Repeat("ab", 32), "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=", " " + strings.Repeat("AB", 32) + "\n"} {
		if _, err := ParseKey(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "abc", strings.Repeat("ab", 31), strings.Repeat("zz", 32)} {
		if _, err := ParseKey(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
