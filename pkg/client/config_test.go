package client_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tributary-sync/tributary/pkg/client"
)

func TestNewChecksConfig(t *testing.T) {
	for _, tc := range []struct {
		cfg  client.Config
		want string // part of the error; "" for none
		base string
	}{
		{client.Config{BaseURL: "http://127.0.0.1:8420"}, "", "http://127.0.0.1:8420"},
		{client.Config{BaseURL: "https://sync.example.com/api/v/"}, "", "https://sync.example.com/api/v"},
		{client.Config{BaseURL: "http://[::1]:8420/"}, "", "http://[::1]:8420"},
		{client.Config{}, "BaseURL is required", ""},
		{client.Config{BaseURL: "127.0.0.1:8420"}, "not an absolute http or https URL", ""},
		{client.Config{BaseURL: "http://user:pw@host:x%zz"}, "not an absolute http or https URL", ""},
		{client.Config{BaseURL: "/v1"}, "scheme must be http or https", ""},
		{client.Config{BaseURL: "http://"}, "has no host", ""},
		{client.Config{BaseURL: "http://:8420"}, "has no host", ""},
		{client.Config{BaseURL: "http://user:pw@host"}, "must not hold user info", ""},
		{client.Config{BaseURL: "http://host?x=1"}, "must not have a query", ""},
		{client.Config{BaseURL: "http://host#top"}, "must not have a fragment", ""},
		{client.Config{BaseURL: "http://host", Token: "two words"}, "space or control character", ""},
		{client.Config{BaseURL: "http://host", Token: "tok\r\nX-Evil: 1"}, "space or control character", ""},
		{client.Config{BaseURL: "http://host", ReconnectDelay: -1}, "ReconnectDelay is negative", ""},
		{client.Config{BaseURL: "http://host", MaxReconnectDelay: -1}, "MaxReconnectDelay is negative", ""},
		{client.Config{BaseURL: "http://host", MaxEventSize: -1}, "MaxEventSize is negative", ""},
	} {
		c, err := client.New(tc.cfg)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg, err)
		case tc.want == "" && c.BaseURL() != tc.base:
			t.Errorf("%+v: base %s, want %s", tc.cfg, c.BaseURL(), tc.base)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// A client works behind a proxy that serves the API under a path, sends
// its headers, and escapes ids so that one cannot reach another route.
func TestBaseURLPathAndHeaders(t *testing.T) {
	s := start(t)
	var (
		mu      sync.Mutex
		paths   []string
		headers []http.Header
	)
	target, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	proxy := httptest.NewServer(http.StripPrefix("/tributary", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.EscapedPath())
		headers = append(headers, r.Header.Clone())
		mu.Unlock()
		r.URL.Scheme, r.URL.Host = target.URL.Scheme, target.URL.Host
		r.RequestURI = ""
		resp, err := http.DefaultTransport.RoundTrip(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			_, _ = w.Write(buf[:n])
			if err != nil {
				return
			}
		}
	})))
	t.Cleanup(proxy.Close)

	c := newClient(t, proxy.URL+"/tributary/", client.Config{Token: "some-token-0123456789", UserAgent: "tester/1", Timeout: 5 * time.Second})
	if _, err := c.Version(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ListSources(t.Context(), client.PageParams{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.GetSource(t.Context(), "../runs")
	mustAPIError(t, err, 404, client.CodeNotFound)
	_, err = c.GetRun(t.Context(), "a/cancel")
	mustAPIError(t, err, 404, client.CodeNotFound)

	mu.Lock()
	defer mu.Unlock()
	want := []string{"/api/version", "/v1/sources", "/v1/sources/..%2Fruns", "/v1/runs/a%2Fcancel"}
	if strings.Join(paths, " ") != strings.Join(want, " ") {
		t.Fatalf("paths %v, want %v", paths, want)
	}
	for _, h := range headers {
		if h.Get("Authorization") != "Bearer some-token-0123456789" || h.Get("User-Agent") != "tester/1" {
			t.Fatalf("headers: %v", h)
		}
	}
}

func TestInvalidIDs(t *testing.T) {
	c := newClient(t, "http://127.0.0.1:1", client.Config{})
	for _, id := range []string{"", ".", ".."} {
		if _, err := c.GetSource(t.Context(), id); !errors.Is(err, client.ErrInvalidID) {
			t.Errorf("GetSource(%q): %v", id, err)
		}
		if _, err := c.RunEvents(t.Context(), id, client.StreamOptions{}); !errors.Is(err, client.ErrInvalidID) {
			t.Errorf("RunEvents(%q): %v", id, err)
		}
		if _, err := c.GetDocumentContent(t.Context(), "src", id, client.ContentParams{}); !errors.Is(err, client.ErrInvalidID) {
			t.Errorf("GetDocumentContent(%q): %v", id, err)
		}
	}
}
