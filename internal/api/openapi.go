package api

import (
	_ "embed" // the OpenAPI description
	"net/http"
	"slices"
	"strconv"
)

// openAPISpec is the OpenAPI 3.1 description of every route, served at
// GET /openapi.json. It is written by hand and kept true by tests:
// TestOpenAPIRoutes (every route is described, and nothing else),
// TestOpenAPIConformance (real answers match its schemas) and
// TestOpenAPILint (Redocly's recommended rules).
//
//go:embed openapi.json
var openAPISpec []byte

// OpenAPI returns the OpenAPI description the server serves.
func OpenAPI() []byte { return slices.Clone(openAPISpec) }

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPISpec)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openAPISpec)
}
