// Package extract turns documents into plain text for indexers: plain text,
// Markdown, HTML (visible text only), CSV, JSON, PDF, DOCX, PPTX and XLSX.
// An unsupported type is a typed error, never empty text; inputs and outputs
// are bounded, and a truncated text says so.
package extract

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"path"
	"strings"
	"unicode/utf8"
)

// Default limits.
const (
	DefaultMaxInput = 50 << 20
	DefaultMaxText  = 5 << 20
)

// MIME types the extractor knows, by the name it reports.
const (
	TypeText     = "text/plain"
	TypeMarkdown = "text/markdown"
	TypeHTML     = "text/html"
	TypeCSV      = "text/csv"
	TypeJSON     = "application/json"
	TypePDF      = "application/pdf"
	TypeDOCX     = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	TypePPTX     = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	TypeXLSX     = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
)

// Options bound an extraction. Zero values take the defaults.
type Options struct {
	// MaxInput is the largest input accepted, in bytes; default 50 MiB.
	MaxInput int64
	// MaxText is the most text returned, in bytes; longer text is cut on a
	// character boundary and Result.Truncated set. Default 5 MiB.
	MaxText int
}

func (o *Options) setDefaults() {
	if o.MaxInput <= 0 {
		o.MaxInput = DefaultMaxInput
	}
	if o.MaxText <= 0 {
		o.MaxText = DefaultMaxText
	}
}

// Result is extracted text.
type Result struct {
	Text string
	// Truncated is true when the text was cut at Options.MaxText.
	Truncated bool
	// MimeType is the type the input was read as.
	MimeType string
}

// UnsupportedError is the answer for a type the extractor does not know.
type UnsupportedError struct{ MimeType string }

func (e *UnsupportedError) Error() string {
	return fmt.Sprintf("extract: no text extractor for type %q", e.MimeType)
}

// TooLargeError is the answer for an input over Options.MaxInput.
type TooLargeError struct{ Size, Limit int64 }

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("extract: input of %d bytes is over the %d byte limit", e.Size, e.Limit)
}

// ErrMalformed wraps the error of an input that does not parse as its type.
var ErrMalformed = errors.New("extract: malformed input")

func malformed(kind string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrMalformed, kind, err)
}

// Detect names the type of data: its declared MIME type when the extractor
// knows it, else the type of its file name's extension, else what its bytes
// look like. The result may be a type the extractor does not support.
func Detect(mimeType, name string, data []byte) string {
	if t := normalize(mimeType); t != "" && t != "application/octet-stream" {
		return t
	}
	if t := byExtension(name); t != "" {
		return t
	}
	return normalize(http.DetectContentType(data))
}

// Supported reports whether Text can extract the type.
func Supported(mimeType string) bool {
	_, ok := extractors[normalize(mimeType)]
	return ok
}

// Text extracts the text of data, of the given MIME type (detected from name
// and content when empty or generic).
func Text(data []byte, mimeType, name string, opts Options) (*Result, error) {
	opts.setDefaults()
	if int64(len(data)) > opts.MaxInput {
		return nil, &TooLargeError{Size: int64(len(data)), Limit: opts.MaxInput}
	}
	t := Detect(mimeType, name, data)
	fn, ok := extractors[t]
	if !ok {
		return nil, &UnsupportedError{MimeType: t}
	}
	w := &textWriter{max: opts.MaxText}
	if err := safely(func() error { return fn(data, w, opts) }); err != nil {
		return nil, err
	}
	return &Result{Text: strings.TrimSpace(w.String()), Truncated: w.truncated, MimeType: t}, nil
}

// safely turns a parser's panic (malformed input reaching a library that
// panics) into an error.
func safely(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = malformed("parser panic", fmt.Errorf("%v", r))
		}
	}()
	return fn()
}

type extractor func(data []byte, w *textWriter, opts Options) error

var extractors = map[string]extractor{
	TypeText:     plain,
	TypeMarkdown: plain,
	TypeHTML:     htmlText,
	TypeCSV:      csvText,
	TypeJSON:     jsonText,
	TypePDF:      pdfText,
	TypeDOCX:     docxText,
	TypePPTX:     pptxText,
	TypeXLSX:     xlsxText,
}

func normalize(mimeType string) string {
	if mimeType == "" {
		return ""
	}
	t, _, err := mime.ParseMediaType(mimeType)
	if err != nil {
		return strings.ToLower(strings.TrimSpace(mimeType))
	}
	switch t {
	case "text/x-markdown":
		return TypeMarkdown
	case "application/xhtml+xml":
		return TypeHTML
	case "text/json":
		return TypeJSON
	}
	return t
}

func byExtension(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".txt", ".text", ".log":
		return TypeText
	case ".md", ".markdown":
		return TypeMarkdown
	case ".html", ".htm", ".xhtml":
		return TypeHTML
	case ".csv":
		return TypeCSV
	case ".json":
		return TypeJSON
	case ".pdf":
		return TypePDF
	case ".docx":
		return TypeDOCX
	case ".pptx":
		return TypePPTX
	case ".xlsx":
		return TypeXLSX
	}
	return ""
}

// errFull stops an extractor once the text is at its limit.
var errFull = errors.New("text limit reached")

// textWriter collects text up to max bytes, cutting on a character boundary.
type textWriter struct {
	bytes.Buffer
	max       int
	truncated bool
}

// write appends s, or as much of it as fits; it returns errFull when the
// limit is reached, so extractors can stop early.
func (w *textWriter) write(s string) error {
	if w.truncated {
		return errFull
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if room := w.max - w.Len(); len(s) > room {
		cut := room
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		w.WriteString(s[:cut])
		w.truncated = true
		return errFull
	}
	w.WriteString(s)
	return nil
}

// newline ends the current line unless the text is empty or already ends one.
func (w *textWriter) newline() error {
	if w.Len() == 0 || bytes.HasSuffix(w.Bytes(), []byte("\n")) {
		return nil
	}
	return w.write("\n")
}

// done maps errFull to success: a full text is a result, not a failure.
func done(err error) error {
	if errors.Is(err, errFull) {
		return nil
	}
	return err
}

func plain(data []byte, w *textWriter, _ Options) error {
	return done(w.write(string(data)))
}
