package rss

import (
	"context"
	"fmt"
	"strings"

	"github.com/tributary-sync/tributary/pkg/connector"
)

// ActionValidateFeed is the name of the action that fetches and parses the
// feed.
const ActionValidateFeed = "validate_feed"

var actions = []connector.ActionDefinition{
	{
		Name:        ActionValidateFeed,
		Description: "Fetch and parse the feed; return its title, type and entry count",
		Parameters: []connector.ActionParameter{
			{Name: "url", Type: "string", Description: "A feed URL to check instead of the source's feed_url (http or https), with the source's timeout and size limit."},
		},
	},
}

// FeedInfo is the result of validate_feed.
type FeedInfo struct {
	// URL is the feed checked (password redacted); FinalURL where it was
	// read from, after redirects.
	URL        string `json:"url"`
	FinalURL   string `json:"final_url"`
	Title      string `json:"title"`
	FeedType   string `json:"feed_type"`
	Version    string `json:"feed_version,omitempty"`
	EntryCount int    `json:"entry_count"`
}

// ExecuteAction implements connector.ActionExecutor.
func (c *Connector) ExecuteAction(ctx context.Context, req *connector.ActionRequest) (any, error) {
	if req.Action != ActionValidateFeed {
		return nil, fmt.Errorf("unknown action %q", req.Action)
	}
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return nil, err
	}
	var in struct {
		URL string `json:"url"`
	}
	if err := req.DecodeParams(&in); err != nil {
		return nil, err
	}
	if in.URL != "" {
		u, err := checkURL(in.URL)
		if err != nil {
			return nil, fmt.Errorf("url: %w", err)
		}
		cfg.url, cfg.redacted = u, u.Redacted()
	}
	got, err := fetch(ctx, cfg, nil)
	if err != nil {
		return nil, err
	}
	return FeedInfo{
		URL:        cfg.redacted,
		FinalURL:   got.Final.Redacted(),
		Title:      strings.TrimSpace(got.Feed.Title),
		FeedType:   got.Feed.FeedType,
		Version:    got.Feed.FeedVersion,
		EntryCount: len(got.Feed.Items),
	}, nil
}

// TestConnection implements connector.ConnectionTester: the feed must be
// fetched and parsed.
func (c *Connector) TestConnection(ctx context.Context, req *connector.ActionRequest) error {
	cfg, err := parseConfig(req.Config)
	if err != nil {
		return err
	}
	_, err = fetch(ctx, cfg, nil)
	return err
}

var _ interface {
	connector.Connector
	connector.ActionExecutor
	connector.ConnectionTester
} = (*Connector)(nil)
