package cli

import "testing"

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"nats://127.0.0.1:4222":                                   "nats://127.0.0.1:4222",
		"nats://worker:s3cret@a:4222,nats://worker:s3cret@b:4222": "nats://worker:xxxxx@a:4222,nats://worker:xxxxx@b:4222",
		"nats://token@a:4222":                                     "nats://token@a:4222",
		"":                                                        "",
	} {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := EnvName("http-addr"); got != "TRIBUTARY_HTTP_ADDR" {
		t.Fatalf("EnvName = %q", got)
	}
}
