// Package secret seals source credentials for storage: AES-256-GCM under a
// 32-byte key the manager reads from a file or the environment, each
// ciphertext bound to its source id so records cannot be swapped.
package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the key length in bytes (AES-256).
const KeySize = 32

const version byte = 1

// ErrWrongKey is returned when a sealed value was sealed under another key.
var ErrWrongKey = errors.New("sealed with another key")

// Box seals and opens values under one key.
type Box struct {
	aead  cipher.AEAD
	keyID string
}

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret: key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	sum := sha256.Sum256(append([]byte("tributary key id\x00"), key...))
	return &Box{aead: aead, keyID: hex.EncodeToString(sum[:4])}, nil
}

// KeyID names the key without revealing it (8 hex digits), so a record
// sealed under another key is recognised as such.
func (b *Box) KeyID() string { return b.keyID }

// Seal encrypts plaintext bound to context (the source id): a version
// byte, a random 96-bit nonce, the ciphertext and its tag.
func (b *Box) Seal(plaintext []byte, context string) []byte {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("secret: no randomness: " + err.Error()) // crypto/rand never fails on supported systems
	}
	out := make([]byte, 0, 1+len(nonce)+len(plaintext)+b.aead.Overhead())
	out = append(append(out, version), nonce...)
	return b.aead.Seal(out, nonce, plaintext, []byte(context))
}

// Open decrypts a value Seal returned for the same context.
func (b *Box) Open(sealed []byte, context string) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < 1+n+b.aead.Overhead() || sealed[0] != version {
		return nil, errors.New("secret: not a sealed value")
	}
	out, err := b.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(context))
	if err != nil {
		return nil, fmt.Errorf("secret: %w (wrong key, or the record was altered or moved)", ErrWrongKey)
	}
	return out, nil
}

// ParseKey reads a key written as 64 hex digits or as standard base64.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, fmt.Errorf("secret: a key is %d bytes as 64 hex digits or base64", KeySize)
}

// LoadOrCreate reads the key file at path, or, when there is none, creates
// it (mode 0600) with a fresh random key and reports created. A key file
// readable by others is refused.
func LoadOrCreate(path string) (key []byte, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		fi, serr := os.Stat(path)
		if serr == nil && fi.Mode().Perm()&0o077 != 0 {
			return nil, false, fmt.Errorf("secret: key file %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
		}
		k, err := ParseKey(string(b))
		if err != nil {
			return nil, false, fmt.Errorf("%w (in %s)", err, path)
		}
		return k, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("secret: %w", err)
	}
	key = make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, false, fmt.Errorf("secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("secret: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("secret: %w", err)
	}
	if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		_ = f.Close()
		return nil, false, fmt.Errorf("secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, false, fmt.Errorf("secret: %w", err)
	}
	return key, true, nil
}
