package webhooks_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tagihan/billing/internal/outbox"
	"github.com/tagihan/billing/internal/webhooks"
)

const docsPath = "../../docs/webhooks.md"

// snippet returns the fenced code block of lang that follows marker.
func snippet(t *testing.T, doc, marker, lang string) string {
	t.Helper()
	m := regexp.MustCompile("(?s)<!-- " + marker + " -->\\s*```" + lang + "\\n(.*?)```").FindStringSubmatch(doc)
	if m == nil {
		t.Fatalf("%s has no %s block after <!-- %s -->", docsPath, lang, marker)
	}
	return m[1]
}

// signatureCases are signatures the engine made, and whether a receiver
// must accept each.
func signatureCases() (body []byte, secret string, now time.Time, cases []struct {
	header, secret string
	body           []byte
	ok             bool
}) {
	body = []byte(`{"id":"evt-1","event":"invoice.paid","data":{"note":"Tagihan \u00e9"}}`)
	secret = "whsec_3b1f0c5a9d2e4f6a8b0c1d2e3f4a5b6c"
	now = time.Unix(1772870400, 0)
	good := webhooks.Sign(secret, now.Add(-time.Minute), body)
	cases = []struct {
		header, secret string
		body           []byte
		ok             bool
	}{
		{good, secret, body, true},
		{good, secret + "x", body, false},
		{good, secret, append([]byte(" "), body...), false},
		{webhooks.Sign(secret, now.Add(-10*time.Minute), body), secret, body, false},
		{"t=" + strconv.FormatInt(now.Unix(), 10) + ",v1=00", secret, body, false},
		{"garbage", secret, body, false},
	}
	return body, secret, now, cases
}

// TestDocumentedVerificationInGo compiles the Go verification code of
// docs/webhooks.md and runs it on signatures the engine made.
func TestDocumentedVerificationInGo(t *testing.T) {
	raw, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	code := snippet(t, string(raw), "verify-go", "go")
	dir := t.TempDir()
	code = strings.Replace(code, "package webhookauth", "package main", 1)
	main := `package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	sec, _ := strconv.ParseInt(os.Args[4], 10, 64)
	if err := Verify(os.Args[1], []byte(os.Args[2]), os.Args[3], 5*time.Minute, time.Unix(sec, 0)); err != nil {
		fmt.Println("refused:", err)
		return
	}
	fmt.Println("ok")
}
`
	for name, content := range map[string]string{"go.mod": "module verifydoc\n\ngo 1.22\n", "verify.go": code, "main.go": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "verify")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the documented Go code does not build: %v\n%s", err, out)
	}
	_, _, now, cases := signatureCases()
	for i, c := range cases {
		out, err := exec.Command(bin, c.header, string(c.body), c.secret, strconv.FormatInt(now.Unix(), 10)).Output()
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.TrimSpace(string(out)) == "ok"; got != c.ok {
			t.Errorf("case %d: the documented Go code says %q, want ok=%v", i, out, c.ok)
		}
	}
}

// TestDocumentedVerificationInPython runs the Python verification code of
// docs/webhooks.md on signatures the engine made.
func TestDocumentedVerificationInPython(t *testing.T) {
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed")
	}
	raw, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	code := snippet(t, string(raw), "verify-python", "python") + `
import sys
print("ok" if verify(sys.argv[1], sys.argv[2].encode(), sys.argv[3], now=float(sys.argv[4])) else "refused")
`
	_, _, now, cases := signatureCases()
	for i, c := range cases {
		out, err := exec.Command(python, "-c", code, c.header, string(c.body), c.secret, strconv.FormatInt(now.Unix(), 10)).CombinedOutput()
		if err != nil {
			t.Fatalf("the documented Python code failed: %v\n%s", err, out)
		}
		if got := strings.TrimSpace(string(out)) == "ok"; got != c.ok {
			t.Errorf("case %d: the documented Python code says %q, want ok=%v", i, out, c.ok)
		}
	}
}

// TestCatalogueListsEveryEventType keeps docs/webhooks.md's catalogue and
// the openapi EventType enum in step with outbox.Types.
func TestCatalogueListsEveryEventType(t *testing.T) {
	doc, err := os.ReadFile(docsPath)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range outbox.Types {
		if !strings.Contains(string(doc), "| `"+typ+"` |") {
			t.Errorf("docs/webhooks.md's catalogue has no row for %s", typ)
		}
		if !strings.Contains(string(spec), "        - "+typ+"\n") {
			t.Errorf("docs/openapi.yaml's EventType has no %s", typ)
		}
	}
}
