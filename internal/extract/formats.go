package extract

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ledongthuc/pdf"
	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlText keeps the text a browser would show: no head, scripts, styles or
// templates; block elements end lines.
func htmlText(data []byte, w *textWriter, _ Options) error {
	z := html.NewTokenizer(bytes.NewReader(data))
	skip := 0 // depth inside elements whose text is not shown
	for {
		switch z.Next() {
		case html.ErrorToken:
			if errors.Is(z.Err(), io.EOF) {
				return nil
			}
			return malformed("html", z.Err())
		case html.TextToken:
			if skip > 0 {
				continue
			}
			if s := strings.Join(strings.Fields(string(z.Text())), " "); s != "" {
				if w.Len() > 0 && !bytes.HasSuffix(w.Bytes(), []byte("\n")) {
					if err := w.write(" "); err != nil {
						return done(err)
					}
				}
				if err := w.write(s); err != nil {
					return done(err)
				}
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if hidden(a) {
				if tt := z.Token().Type; tt == html.StartTagToken {
					skip++
				}
				continue
			}
			if block(a) {
				if err := w.newline(); err != nil {
					return done(err)
				}
			}
		case html.EndTagToken:
			name, _ := z.TagName()
			a := atom.Lookup(name)
			if hidden(a) {
				if skip > 0 {
					skip--
				}
				continue
			}
			if block(a) {
				if err := w.newline(); err != nil {
					return done(err)
				}
			}
		}
	}
}

func hidden(a atom.Atom) bool {
	switch a {
	case atom.Head, atom.Script, atom.Style, atom.Noscript, atom.Template, atom.Svg, atom.Iframe, atom.Object:
		return true
	}
	return false
}

func block(a atom.Atom) bool {
	switch a {
	case atom.P, atom.Div, atom.Br, atom.Li, atom.Ul, atom.Ol, atom.Tr, atom.Table, atom.H1, atom.H2, atom.H3,
		atom.H4, atom.H5, atom.H6, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Pre,
		atom.Blockquote, atom.Hr, atom.Dt, atom.Dd, atom.Title, atom.Main, atom.Nav, atom.Aside:
		return true
	}
	return false
}

// csvText writes one line per record, fields separated by tabs.
func csvText(data []byte, w *textWriter, _ Options) error {
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return malformed("csv", err)
		}
		if err := w.write(strings.Join(rec, "\t") + "\n"); err != nil {
			return done(err)
		}
	}
}

// jsonText writes one "path: value" line per scalar, in document order for
// arrays and key order for objects.
func jsonText(data []byte, w *textWriter, _ Options) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return malformed("json", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return malformed("json", errors.New("data after the top-level value"))
	}
	return done(walkJSON(w, "", v))
}

func walkJSON(w *textWriter, prefix string, v any) error {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			p := k
			if prefix != "" {
				p = prefix + "." + k
			}
			if err := walkJSON(w, p, x[k]); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := walkJSON(w, fmt.Sprintf("%s[%d]", prefix, i), e); err != nil {
				return err
			}
		}
	case nil:
	default:
		line := fmt.Sprint(x)
		if prefix != "" {
			line = prefix + ": " + line
		}
		return w.write(line + "\n")
	}
	return nil
}

// pdfText reads the text of every page.
func pdfText(data []byte, w *textWriter, _ Options) error {
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return malformed("pdf", err)
	}
	pages, err := pdfPages(r.Trailer().Key("Root").Key("Pages"))
	if err != nil {
		return err
	}
	for _, v := range pages {
		p := pdf.Page{V: v}
		rows, err := p.GetTextByRow()
		if err != nil {
			return malformed("pdf", err)
		}
		for _, row := range rows {
			var line []string
			for _, t := range row.Content {
				line = append(line, t.S)
			}
			if err := w.write(strings.Join(line, "") + "\n"); err != nil {
				return done(err)
			}
		}
		if err := w.newline(); err != nil {
			return done(err)
		}
	}
	return nil
}

// Bounds of a PDF page tree. The library walks the tree without noticing a
// cycle (a Kids array naming its own parent loops forever), so the pages
// are collected here, with a depth and a node limit.
const (
	maxPDFTreeDepth = 64
	maxPDFTreeNodes = 100_000
)

func pdfPages(root pdf.Value) ([]pdf.Value, error) {
	var pages []pdf.Value
	nodes := 0
	var walk func(v pdf.Value, depth int) error
	walk = func(v pdf.Value, depth int) error {
		nodes++
		if depth > maxPDFTreeDepth || nodes > maxPDFTreeNodes {
			return malformed("pdf", errors.New("page tree too deep or too large (a cycle?)"))
		}
		switch v.Key("Type").Name() {
		case "Page":
			pages = append(pages, v)
			return nil
		case "Pages":
			kids := v.Key("Kids")
			for i := 0; i < kids.Len(); i++ {
				if err := walk(kids.Index(i), depth+1); err != nil {
					return err
				}
			}
			return nil
		}
		return nil // not a page node: ignore it, as readers do
	}
	if root.IsNull() {
		return nil, malformed("pdf", errors.New("no page tree"))
	}
	return pages, walk(root, 0)
}
