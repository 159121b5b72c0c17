package extract

import (
	"archive/zip"
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Office Open XML files (DOCX, PPTX, XLSX) are zip archives of XML parts.
// Parts are read through a budget of decompressed bytes, so a zip bomb ends
// in an error rather than in memory exhaustion.

type ooxml struct {
	files  map[string]*zip.File
	budget int64 // decompressed bytes left to read
}

func openOOXML(kind string, data []byte, opts Options) (*ooxml, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, malformed(kind, err)
	}
	o := &ooxml{files: map[string]*zip.File{}, budget: 4 * opts.MaxInput}
	for _, f := range zr.File {
		o.files[f.Name] = f
	}
	return o, nil
}

// part opens one part, or returns nil when it is absent.
func (o *ooxml) part(kind, name string) (*xml.Decoder, func(), error) {
	f, ok := o.files[name]
	if !ok {
		return nil, func() {}, nil
	}
	rc, err := f.Open()
	if err != nil {
		return nil, func() {}, malformed(kind, err)
	}
	lr := &budgetReader{r: rc, o: o}
	d := xml.NewDecoder(lr)
	d.Strict = false
	return d, func() { _ = rc.Close() }, nil
}

// partsMatching lists the parts whose names match re, in natural order
// (slide2 before slide10).
func (o *ooxml) partsMatching(re *regexp.Regexp) []string {
	var names []string
	for n := range o.files {
		if re.MatchString(n) {
			names = append(names, n)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := partNumber(re, names[i]), partNumber(re, names[j])
		if a != b {
			return a < b
		}
		return names[i] < names[j]
	})
	return names
}

func partNumber(re *regexp.Regexp, name string) int {
	m := re.FindStringSubmatch(name)
	if len(m) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

var errBudget = errors.New("decompressed size over the limit (zip bomb?)")

type budgetReader struct {
	r io.Reader
	o *ooxml
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.o.budget <= 0 {
		return 0, errBudget
	}
	if int64(len(p)) > b.o.budget {
		p = p[:b.o.budget]
	}
	n, err := b.r.Read(p)
	b.o.budget -= int64(n)
	return n, err
}

// walkText streams a part, writing the character data of elements named
// text, ending a line at the end of elements named para, and writing a tab
// for elements named tab.
func walkText(kind string, d *xml.Decoder, w *textWriter, text, para, tab string) error {
	in, run := 0, 0 // inside a text element; inside a run (tabs outside runs are tab stops)
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return malformed(kind, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case text:
				in++
			case "r":
				run++
			case tab:
				if run == 0 {
					continue
				}
				if err := w.write("\t"); err != nil {
					return err
				}
			case "br":
				if err := w.write("\n"); err != nil {
					return err
				}
			}
		case xml.EndElement:
			switch t.Name.Local {
			case text:
				in--
			case "r":
				run--
			case para:
				if err := w.newline(); err != nil {
					return err
				}
			}
		case xml.CharData:
			if in > 0 {
				if err := w.write(string(t)); err != nil {
					return err
				}
			}
		}
	}
}

// docxText reads the body of a Word document: paragraphs as lines.
func docxText(data []byte, w *textWriter, opts Options) error {
	o, err := openOOXML("docx", data, opts)
	if err != nil {
		return err
	}
	d, closeFn, err := o.part("docx", "word/document.xml")
	if err != nil {
		return err
	}
	defer closeFn()
	if d == nil {
		return malformed("docx", errors.New("no word/document.xml"))
	}
	return done(walkText("docx", d, w, "t", "p", "tab"))
}

var slideRE = regexp.MustCompile(`^ppt/slides/slide(\d+)\.xml$`)

// pptxText reads every slide in order, a blank line between slides.
func pptxText(data []byte, w *textWriter, opts Options) error {
	o, err := openOOXML("pptx", data, opts)
	if err != nil {
		return err
	}
	slides := o.partsMatching(slideRE)
	if len(slides) == 0 {
		return malformed("pptx", errors.New("no slides"))
	}
	for i, name := range slides {
		if i > 0 {
			if err := w.write("\n"); err != nil {
				return done(err)
			}
		}
		d, closeFn, err := o.part("pptx", name)
		if err != nil {
			return err
		}
		err = walkText("pptx", d, w, "t", "p", "tab")
		closeFn()
		if err != nil {
			return done(err)
		}
		if err := w.newline(); err != nil {
			return done(err)
		}
	}
	return nil
}

var sheetRE = regexp.MustCompile(`^xl/worksheets/sheet(\d+)\.xml$`)

// xlsxText reads every sheet: one line per row, cells separated by tabs,
// shared strings resolved.
func xlsxText(data []byte, w *textWriter, opts Options) error {
	o, err := openOOXML("xlsx", data, opts)
	if err != nil {
		return err
	}
	shared, err := o.sharedStrings()
	if err != nil {
		return err
	}
	sheets := o.partsMatching(sheetRE)
	if len(sheets) == 0 {
		return malformed("xlsx", errors.New("no worksheets"))
	}
	for i, name := range sheets {
		if i > 0 {
			if err := w.write("\n"); err != nil {
				return done(err)
			}
		}
		d, closeFn, err := o.part("xlsx", name)
		if err != nil {
			return err
		}
		err = sheetText(d, w, shared)
		closeFn()
		if err != nil {
			return done(err)
		}
	}
	return nil
}

func (o *ooxml) sharedStrings() ([]string, error) {
	d, closeFn, err := o.part("xlsx", "xl/sharedStrings.xml")
	if err != nil || d == nil {
		return nil, err
	}
	defer closeFn()
	var out []string
	var cur strings.Builder
	inT := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, malformed("xlsx", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "si":
				cur.Reset()
			case "t":
				inT++
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "si":
				out = append(out, cur.String())
			case "t":
				inT--
			}
		case xml.CharData:
			if inT > 0 && cur.Len() < 1<<20 {
				cur.Write(t)
			}
		}
	}
}

func sheetText(d *xml.Decoder, w *textWriter, shared []string) error {
	var row []string
	var cellType string
	var val strings.Builder
	inV := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return malformed("xlsx", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch t.Name.Local {
			case "row":
				row = row[:0]
			case "c":
				cellType = ""
				for _, a := range t.Attr {
					if a.Name.Local == "t" {
						cellType = a.Value
					}
				}
				val.Reset()
			case "v", "t":
				inV++
			}
		case xml.EndElement:
			switch t.Name.Local {
			case "v", "t":
				inV--
			case "c":
				s := val.String()
				if cellType == "s" {
					i, err := strconv.Atoi(strings.TrimSpace(s))
					if err != nil || i < 0 || i >= len(shared) {
						return malformed("xlsx", fmt.Errorf("shared string %q out of range", s))
					}
					s = shared[i]
				}
				row = append(row, s)
			case "row":
				if len(row) > 0 {
					if err := w.write(strings.Join(row, "\t") + "\n"); err != nil {
						return err
					}
				}
			}
		case xml.CharData:
			if inV > 0 && val.Len() < 1<<20 {
				val.Write(t)
			}
		}
	}
}
