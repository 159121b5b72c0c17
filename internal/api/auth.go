package api

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
)

// Role is what a token may do: viewers read, operators also trigger,
// cancel, replay and change documents, admins also manage sources and
// their credentials.
type Role int

// Roles, each allowed what the one before it is.
const (
	RoleViewer Role = iota + 1
	RoleOperator
	RoleAdmin
)

func (r Role) String() string {
	switch r {
	case RoleViewer:
		return "viewer"
	case RoleOperator:
		return "operator"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

func parseRole(s string) (Role, bool) {
	for _, r := range []Role{RoleViewer, RoleOperator, RoleAdmin} {
		if s == r.String() {
			return r, true
		}
	}
	return 0, false
}

// Tokens are the API's bearer tokens and their roles, read from a file of
// "TOKEN ROLE" lines (# starts a comment). Only the tokens' SHA-256 is kept.
type Tokens struct {
	path string
	mu   sync.RWMutex
	byID map[[32]byte]Role
}

// minTokenLen keeps guessable tokens out.
const minTokenLen = 16

// LoadTokens reads the tokens file at path.
func LoadTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Reload reads the file again; on an error the tokens stay as they were.
func (t *Tokens) Reload() error {
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("auth tokens: %w", err)
	}
	byID := map[[32]byte]Role{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return fmt.Errorf("auth tokens: %s:%d: want TOKEN ROLE", t.path, n)
		}
		role, ok := parseRole(f[1])
		if !ok {
			return fmt.Errorf("auth tokens: %s:%d: role %q is not admin, operator or viewer", t.path, n, f[1])
		}
		if len(f[0]) < minTokenLen {
			return fmt.Errorf("auth tokens: %s:%d: token shorter than %d characters", t.path, n, minTokenLen)
		}
		id := sha256.Sum256([]byte(f[0]))
		if _, dup := byID[id]; dup {
			return fmt.Errorf("auth tokens: %s:%d: token listed twice", t.path, n)
		}
		byID[id] = role
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("auth tokens: %w", err)
	}
	if len(byID) == 0 {
		return fmt.Errorf("auth tokens: %s lists no token", t.path)
	}
	t.mu.Lock()
	t.byID = byID
	t.mu.Unlock()
	return nil
}

// Len is how many tokens there are.
func (t *Tokens) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byID)
}

// role returns the role of a token. Tokens are compared by their SHA-256,
// a map lookup whose time says nothing about how close a guess came.
func (t *Tokens) role(token string) (Role, bool) {
	id := sha256.Sum256([]byte(token))
	t.mu.RLock()
	defer t.mu.RUnlock()
	r, ok := t.byID[id]
	return r, ok
}

// adminRoutes manage sources and their credentials.
var adminRoutes = map[string]bool{
	"POST /v1/sources":        true,
	"PATCH /v1/sources/{id}":  true,
	"DELETE /v1/sources/{id}": true,
	"PUT /v1/admin/log-level": true,
	// A checkpoint decides what the next sync reads (or skips).
	"PUT /v1/sources/{id}/checkpoint":    true,
	"DELETE /v1/sources/{id}/checkpoint": true,
}

// requiredRole is the least role a route needs: reading is for viewers,
// sources for admins, everything else (sync, cancel, replay, documents,
// actions and connection tests)
// for operators.
func requiredRole(method, pattern string) Role {
	switch {
	case method == http.MethodGet || method == http.MethodHead:
		return RoleViewer
	case adminRoutes[pattern]:
		return RoleAdmin
	}
	return RoleOperator
}

// authorize checks a /v1 request's bearer token; it writes the 401 or 403
// and returns false when the request may not go on.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, pattern string) bool {
	h := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tributary"`)
		writeProblem(w, http.StatusUnauthorized, "unauthorized", "A bearer token is required: Authorization: Bearer <token>")
		return false
	}
	role, ok := s.tokens.role(strings.TrimSpace(token))
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tributary", error="invalid_token"`)
		writeProblem(w, http.StatusUnauthorized, "unauthorized", "The bearer token is not valid")
		return false
	}
	if pattern == "" {
		return true // no such route: the 404 or 405 follows
	}
	method, _, _ := strings.Cut(pattern, " ")
	if need := requiredRole(method, pattern); role < need {
		writeProblem(w, http.StatusForbidden, "forbidden", fmt.Sprintf("This needs the %s role; the token has %s", need, role))
		return false
	}
	return true
}
