package notes

import (
	"context"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// SyncDocument implements connector.DocumentSyncer: it re-fetches the one
// note req.Document names.
func (c *Connector) SyncDocument(ctx context.Context, req *connector.SyncRequest, sc connector.SyncContext) error {
	var cfg Config
	if err := req.DecodeConfig(&cfg); err != nil {
		return err
	}
	var creds Credentials
	if _, err := req.DecodeCredentials(&creds); err != nil {
		return err
	}
	notes, err := c.fetch(ctx, cfg, creds)
	if err != nil {
		return err
	}
	for _, n := range notes {
		if n.ID == req.Document {
			sc.IncrementScanned(1)
			return c.emit(ctx, connector.Incremental, sc, n)
		}
	}
	return sc.EmitDeleted(ctx, req.Document) // the source no longer lists it
}

// TestConnection implements connector.ConnectionTester: the source
// answers, with a list of notes, to the token.
func (c *Connector) TestConnection(ctx context.Context, req *connector.ActionRequest) error {
	cfg, creds, err := decode(req)
	if err != nil {
		return err
	}
	_, err = c.fetch(ctx, cfg, creds)
	return err
}

// ExecuteAction implements connector.ActionExecutor, for the actions the
// manifest declares.
func (c *Connector) ExecuteAction(ctx context.Context, req *connector.ActionRequest) (any, error) {
	cfg, creds, err := decode(req)
	if err != nil {
		return nil, err
	}
	var params struct {
		Author string `json:"author"`
	}
	if err := req.DecodeParams(&params); err != nil {
		return nil, err
	}
	notes, err := c.fetch(ctx, cfg, creds)
	if err != nil {
		return nil, err
	}
	count := 0
	for _, n := range notes {
		if !n.Deleted && (params.Author == "" || n.Author == params.Author) {
			count++
		}
	}
	return map[string]int{"notes": count}, nil
}

func decode(req *connector.ActionRequest) (Config, Credentials, error) {
	var cfg Config
	var creds Credentials
	if err := req.DecodeConfig(&cfg); err != nil {
		return cfg, creds, err
	}
	_, err := req.DecodeCredentials(&creds)
	return cfg, creds, err
}
