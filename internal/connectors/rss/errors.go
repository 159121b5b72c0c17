package rss

import (
	"errors"
	"fmt"
)

// ErrFeedTooLarge is wrapped by a FeedError when the feed's body is larger
// than max_feed_size.
var ErrFeedTooLarge = errors.New("feed is larger than max_feed_size")

// FeedError is a feed that could not be fetched or parsed. Its message names
// the feed (without any password in the URL) and says what went wrong; it is
// what a failed run, a failed connection test or a failed validate_feed
// shows the operator.
type FeedError struct {
	// URL is the feed's URL as configured, with any password redacted.
	URL string
	// Op is "fetch" or "parse".
	Op string
	// StatusCode is the HTTP status of a fetch the server refused; 0
	// otherwise.
	StatusCode int
	Err        error
}

func (e *FeedError) Error() string {
	return fmt.Sprintf("feed %s: %s: %v", e.URL, e.Op, e.Err)
}

func (e *FeedError) Unwrap() error { return e.Err }
