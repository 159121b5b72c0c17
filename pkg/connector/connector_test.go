package connector

import (
	"encoding/json"
	"testing"
)

func TestSyncRequestDecodeCredentials(t *testing.T) {
	var creds struct {
		Token string `json:"token"`
	}
	for _, raw := range []json.RawMessage{nil, json.RawMessage("null")} {
		if has, err := (&SyncRequest{Credentials: raw}).DecodeCredentials(&creds); has || err != nil {
			t.Fatalf("%q: got %v, %v; want false, nil", raw, has, err)
		}
	}
	has, err := (&SyncRequest{Credentials: json.RawMessage(`{"token":"t0k"}`)}).DecodeCredentials(&creds)
	if !has || err != nil || creds.Token != "t0k" {
		t.Fatalf("got %v, %v, %q", has, err, creds.Token)
	}
	if _, err := (&SyncRequest{Credentials: json.RawMessage(`[1]`)}).DecodeCredentials(&creds); err == nil {
		t.Fatal("a list decoded into a struct")
	}
}
