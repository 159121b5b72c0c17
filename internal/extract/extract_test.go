package extract_test

import (
	"archive/zip"
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/tributary-sync/tributary/internal/extract"
)

// zipOf builds a zip archive of the given parts, as Office files are.
func zipOf(t testing.TB, parts map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, body := range parts {
		f, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte(body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func docx(t testing.TB, paras ...string) []byte {
	var body strings.Builder
	for _, p := range paras {
		// A tab stop definition in the paragraph properties is not text.
		fmt.Fprintf(&body, `<w:p><w:pPr><w:tabs><w:tab w:val="left" w:pos="720"/></w:tabs></w:pPr><w:r><w:t xml:space="preserve">%s</w:t></w:r></w:p>`, p)
	}
	return zipOf(t, map[string]string{
		"[Content_Types].xml": `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`,
		"word/document.xml": `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` + body.String() +
			`<w:p><w:r><w:t>Cell</w:t><w:tab/><w:t>after tab</w:t></w:r></w:p></w:body></w:document>`,
	})
}

func pptx(t testing.TB, slides map[int]string) []byte {
	parts := map[string]string{}
	for n, text := range slides {
		parts[fmt.Sprintf("ppt/slides/slide%d.xml", n)] = `<?xml version="1.0"?>
<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main">
<p:cSld><p:spTree><p:sp><p:txBody><a:p><a:r><a:t>` + text + `</a:t></a:r></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:sld>`
	}
	parts["ppt/slides/_rels/slide1.xml.rels"] = `<Relationships/>`
	return zipOf(t, parts)
}

func xlsx(t testing.TB) []byte {
	return zipOf(t, map[string]string{
		"xl/sharedStrings.xml": `<?xml version="1.0"?><sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">
<si><t>Name</t></si><si><t>Qty</t></si><si><r><t>Wid</t></r><r><t>get</t></r></si></sst>`,
		"xl/worksheets/sheet1.xml": `<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1" t="s"><v>0</v></c><c r="B1" t="s"><v>1</v></c></row>
<row r="2"><c r="A2" t="s"><v>2</v></c><c r="B2"><v>42</v></c></row>
<row r="3"><c r="A3" t="inlineStr"><is><t>inline</t></is></c></row></sheetData></worksheet>`,
		"xl/worksheets/sheet2.xml": `<?xml version="1.0"?><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>
<row r="1"><c r="A1"><v>3.5</v></c></row></sheetData></worksheet>`,
	})
}

// pdfOf writes a minimal, valid PDF with one page per entry, each showing
// its text in Helvetica.
func pdfOf(pages ...string) []byte {
	var buf bytes.Buffer
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, buf.Len())
		fmt.Fprintf(&buf, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	buf.WriteString("%PDF-1.4\n")
	n := len(pages)
	kids := make([]string, n)
	for i := range pages {
		kids[i] = fmt.Sprintf("%d 0 R", 4+2*i)
	}
	obj("<< /Type /Catalog /Pages 2 0 R >>")
	obj(fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), n))
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
	for i, text := range pages {
		obj(fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", 5+2*i))
		stream := fmt.Sprintf("BT /F1 12 Tf 72 720 Td (%s) Tj ET", text)
		obj(fmt.Sprintf("<< /Length %d >>\nstream\n%s\nendstream", len(stream), stream))
	}
	xref := buf.Len()
	fmt.Fprintf(&buf, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&buf, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&buf, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return buf.Bytes()
}

func TestText(t *testing.T) {
	tests := []struct {
		name     string
		data     []byte
		mimeType string
		file     string
		want     []string // substrings, in order
		not      []string
		asType   string
	}{
		{"plain", []byte("hello\nworld"), "text/plain; charset=utf-8", "", []string{"hello\nworld"}, nil, extract.TypeText},
		{"markdown by extension", []byte("# Title\n\nBody *text*."), "", "notes.md", []string{"# Title", "Body *text*."}, nil, extract.TypeMarkdown},
		{"invalid utf-8 replaced", []byte("caf\xe9"), "text/plain", "", []string{"caf\uFFFD"}, nil, extract.TypeText},
		{"html visible text", []byte(`<html><head><title>T</title><style>.x{}</style><script>var secret=1</script></head>
<body><h1>Heading</h1><p>First <b>bold</b> para.</p><noscript>nojs</noscript><ul><li>one</li><li>two</li></ul><template>tpl</template></body></html>`),
			"text/html", "", []string{"Heading\nFirst bold para.\none\ntwo"}, []string{"secret", ".x{}", "nojs", "tpl"}, extract.TypeHTML},
		{"html sniffed", []byte("<!DOCTYPE html><p>sniffed</p>"), "", "page", []string{"sniffed"}, nil, extract.TypeHTML},
		{"csv", []byte("a,b\n\"quoted, comma\",2\n"), "text/csv", "", []string{"a\tb\nquoted, comma\t2"}, nil, extract.TypeCSV},
		{"json", []byte(`{"title":"T","tags":["x","y"],"n":1.50,"nested":{"k":true},"none":null}`), "application/json", "", []string{"n: 1.50\nnested.k: true\ntags[0]: x\ntags[1]: y\ntitle: T"}, []string{"none"}, extract.TypeJSON},
		{"pdf", pdfOf("Hello PDF", "Second page"), "application/pdf", "", []string{"Hello PDF", "Second page"}, nil, extract.TypePDF},
		{"pdf by extension", pdfOf("By name"), "application/octet-stream", "a.PDF", []string{"By name"}, nil, extract.TypePDF},
		{"docx", docx(t, "First paragraph", "Second &amp; last"), extract.TypeDOCX, "", []string{"First paragraph\nSecond & last\nCell\tafter tab"}, nil, extract.TypeDOCX},
		{"pptx in slide order", pptx(t, map[int]string{1: "One", 2: "Two", 10: "Ten"}), "", "deck.pptx", []string{"One\n\nTwo\n\nTen"}, nil, extract.TypePPTX},
		{"xlsx", xlsx(t), extract.TypeXLSX, "", []string{"Name\tQty\nWidget\t42\ninline\n\n3.5"}, nil, extract.TypeXLSX},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := extract.Text(tt.data, tt.mimeType, tt.file, extract.Options{})
			if err != nil {
				t.Fatalf("Text: %v", err)
			}
			if res.MimeType != tt.asType || res.Truncated {
				t.Errorf("read as %q (truncated %v), want %q", res.MimeType, res.Truncated, tt.asType)
			}
			at := 0
			for _, w := range tt.want {
				i := strings.Index(res.Text[at:], w)
				if i < 0 {
					t.Fatalf("text %q lacks %q (in order)", res.Text, w)
				}
				at += i + len(w)
			}
			for _, n := range tt.not {
				if strings.Contains(res.Text, n) {
					t.Errorf("text %q contains hidden %q", res.Text, n)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	var unsupported *extract.UnsupportedError
	if _, err := extract.Text([]byte{0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a}, "image/png", "", extract.Options{}); !errors.As(err, &unsupported) || unsupported.MimeType != "image/png" {
		t.Errorf("png: %v, want UnsupportedError", err)
	}
	if _, err := extract.Text([]byte{0, 1, 2, 3}, "", "blob.bin", extract.Options{}); !errors.As(err, &unsupported) {
		t.Errorf("binary: %v, want UnsupportedError", err)
	}
	var tooLarge *extract.TooLargeError
	if _, err := extract.Text(make([]byte, 11), "text/plain", "", extract.Options{MaxInput: 10}); !errors.As(err, &tooLarge) || tooLarge.Limit != 10 {
		t.Errorf("large: %v, want TooLargeError", err)
	}
	for name, c := range map[string]struct {
		data     []byte
		mimeType string
	}{
		"json":           {[]byte(`{"a":`), extract.TypeJSON},
		"json trailing":  {[]byte(`{} {}`), extract.TypeJSON},
		"pdf":            {[]byte("%PDF-1.4 garbage"), extract.TypePDF},
		"docx not zip":   {[]byte("not a zip"), extract.TypeDOCX},
		"docx no body":   {zipOf(t, map[string]string{"x.xml": "<x/>"}), extract.TypeDOCX},
		"pptx no slides": {zipOf(t, map[string]string{"x.xml": "<x/>"}), extract.TypePPTX},
		"xlsx bad index": {zipOf(t, map[string]string{"xl/worksheets/sheet1.xml": `<worksheet><sheetData><row><c t="s"><v>9</v></c></row></sheetData></worksheet>`}), extract.TypeXLSX},
	} {
		if _, err := extract.Text(c.data, c.mimeType, "", extract.Options{}); !errors.Is(err, extract.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// Text over the limit is cut on a character boundary, and says so.
func TestTruncation(t *testing.T) {
	res, err := extract.Text([]byte(strings.Repeat("é", 100)), "text/plain", "", extract.Options{MaxText: 51})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Text) != 50 || strings.ContainsRune(res.Text, '\uFFFD') {
		t.Fatalf("truncated %v, %d bytes: %q", res.Truncated, len(res.Text), res.Text)
	}
	res, err = extract.Text(xlsx(t), extract.TypeXLSX, "", extract.Options{MaxText: 6})
	if err != nil || !res.Truncated || res.Text != "Name\tQ" {
		t.Fatalf("xlsx truncated: %+v, %v", res, err)
	}
}

// A small archive that inflates past the budget is an error, not a crash.
func TestZipBomb(t *testing.T) {
	body := `<w:document><w:body><w:p><w:r><w:t>` + strings.Repeat("A", 8<<20) + `</w:t></w:r></w:p></w:body></w:document>`
	data := zipOf(t, map[string]string{"word/document.xml": body})
	if len(data) > 1<<20 {
		t.Fatalf("sample is %d bytes; it should compress well", len(data))
	}
	_, err := extract.Text(data, extract.TypeDOCX, "", extract.Options{MaxInput: 1 << 20})
	if !errors.Is(err, extract.ErrMalformed) || !strings.Contains(err.Error(), "zip bomb") {
		t.Fatalf("zip bomb: %v", err)
	}
}

func TestSupported(t *testing.T) {
	for _, m := range []string{"text/plain", "text/markdown; charset=utf-8", "TEXT/HTML", extract.TypePDF, extract.TypeDOCX, extract.TypePPTX, extract.TypeXLSX, "application/json", "text/csv"} {
		if !extract.Supported(m) {
			t.Errorf("%s not supported", m)
		}
	}
	for _, m := range []string{"image/png", "application/zip", ""} {
		if extract.Supported(m) {
			t.Errorf("%s supported", m)
		}
	}
}

// FuzzText feeds arbitrary bytes to every extractor: an answer or an error,
// never a panic or an unbounded result.
//
//	go test ./internal/extract -run '^$' -fuzz FuzzText -fuzztime 60s
func FuzzText(f *testing.F) {
	types := []string{extract.TypeText, extract.TypeHTML, extract.TypeCSV, extract.TypeJSON, extract.TypePDF, extract.TypeDOCX, extract.TypePPTX, extract.TypeXLSX}
	f.Add(uint8(4), pdfOf("seed"))
	f.Add(uint8(5), docx(f, "seed"))
	f.Add(uint8(6), pptx(f, map[int]string{1: "seed"}))
	f.Add(uint8(7), xlsx(f))
	f.Add(uint8(1), []byte("<p>seed</p>"))
	f.Add(uint8(3), []byte(`{"a":[1,"b"]}`))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		res, err := extract.Text(data, types[int(which)%len(types)], "", extract.Options{MaxText: 4096, MaxInput: 1 << 20})
		if err == nil && len(res.Text) > 4096 {
			t.Fatalf("text of %d bytes over the 4096 limit", len(res.Text))
		}
	})
}
