package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/tributary-sync/tributary/pkg/events"
)

// FuzzDecode checks that Decode never panics, that every error it returns
// wraps ErrInvalid, and that whatever it accepts re-encodes to an event that
// decodes to an equal value (and re-encodes to the same bytes).
//
//	go test -run='^$' -fuzz=FuzzDecode -fuzztime=60s ./pkg/events
func FuzzDecode(f *testing.F) {
	for i, s := range samplePayloads() {
		env, err := events.New(testSource, testRun, s.payload)
		if err != nil {
			f.Fatal(err)
		}
		env.Attempt, env.Seq = i%3, uint64(i)
		b, err := env.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	valid, err := json.Marshal(validEnvelope())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	for _, junk := range []string{
		"", " ", "{}", "[]", "null", "true", `"x"`, "{", `{"id":`,
		`{"id":"` + testID + `"}`,
		`{"id":"` + testID + `","type":"progress","source_id":"s","run_id":"r","time":"2026-01-01T00:00:00Z","data":null}`,
		`{"id":"` + testID + `","type":"progress","source_id":"s","run_id":"r","time":"2026-01-01T00:00:00Z","data": {"scanned":1e30}}`,
		`{"id":"` + testID + `","type":"checkpoint","source_id":"s","run_id":"r","time":"0000-01-01T00:00:00+23:59","data":{"checkpoint": [ 1 , "<\u2028>" ]}}`,
		`{"id":"` + testID + `","type":"document.upserted","source_id":"s","run_id":"r","time":"9999-12-31T23:59:59.999999999-23:59","data":{"document":{"external_id":"\ud800","attributes":{"a":1e308,"b":[{}]}}}}`,
		`{"ID":"` + testID + `","TYPE":"sync.requested","Source_Id":"s","run_id":"r","time":"2026-01-01T00:00:00Z","data":{"connector":"c","mode":"full","config":{"a" : "<&>"}}}`,
		"{\"id\":\"" + testID + "\",\"type\":\"run.failed\",\"source_id\":\"s\",\"run_id\":\"r\",\"time\":\"2026-01-01T00:00:00Z\",\"data\":{\"error\":\"\xff\xfe\"}}",
	} {
		f.Add([]byte(junk))
	}

	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := events.Decode(b)
		if err != nil {
			if env != nil {
				t.Fatalf("Decode returned an envelope and error %v", err)
			}
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("Decode error %q does not wrap ErrInvalid", err)
			}
			return
		}
		checkDecoded(t, env)

		b2, err := env.Encode()
		if err != nil {
			t.Fatalf("Encode of a decoded event: %v\ninput: %q", err, b)
		}
		env2, err := events.Decode(b2)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v\ninput:      %q\nre-encoded: %q", err, b, b2)
		}
		checkDecoded(t, env2)
		if d := sameHeader(env, env2); d != "" {
			t.Fatalf("header differs after re-encoding: %s\ninput:      %q\nre-encoded: %q", d, b, b2)
		}
		if c1, c2 := canonical(t, env.Payload()), canonical(t, env2.Payload()); !reflect.DeepEqual(c1, c2) {
			t.Fatalf("payload differs after re-encoding:\n%#v\n%#v\ninput: %q", c1, c2, b)
		}
		if env.Subject() != env2.Subject() {
			t.Fatalf("subject differs after re-encoding: %q, %q", env.Subject(), env2.Subject())
		}
		b3, err := env2.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b2, b3) {
			t.Fatalf("encoding is not stable:\n%q\n%q", b2, b3)
		}
	})
}

// checkDecoded checks what Decode promises about an envelope it accepts.
func checkDecoded(t *testing.T, env *events.Envelope) {
	t.Helper()
	want, ok := payloadTypes[env.Type]
	if !ok {
		t.Fatalf("Decode accepted unknown type %q", env.Type)
	}
	if got := reflect.TypeOf(env.Payload()); got != want {
		t.Fatalf("Payload() is %v for type %q, want %v", got, env.Type, want)
	}
	if reflect.ValueOf(env.Payload()).IsNil() {
		t.Fatalf("Payload() is nil for type %q", env.Type)
	}
	if !events.ValidToken(env.SourceID) || !events.ValidToken(env.RunID) {
		t.Fatalf("Decode accepted ids %q, %q", env.SourceID, env.RunID)
	}
	if env.Attempt < 0 || env.Time.IsZero() {
		t.Fatalf("Decode accepted attempt %d, time %v", env.Attempt, env.Time)
	}
	if s := env.Subject(); !validSubject(s) {
		t.Fatalf("Subject() of a decoded %q event is %q", env.Type, s)
	}
}

// canonical returns a payload as generic JSON values with exact numbers, so
// two payloads compare equal when they mean the same, whatever the spacing
// or escaping of their raw JSON fields.
func canonical(t *testing.T, p any) any {
	t.Helper()
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("marshal payload %#v: %v", p, err)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("unmarshal payload %s: %v", b, err)
	}
	return v
}
