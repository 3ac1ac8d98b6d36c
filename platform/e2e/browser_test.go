//go:build e2e

package e2e

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// browser is a person's browser without JavaScript: it keeps cookies,
// follows redirects, and submits forms with the entries a browser would
// send. It only talks to loopback addresses: a redirect anywhere else is an
// error, not a request.
type browser struct {
	client *http.Client
}

func newBrowser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{client: &http.Client{
		Jar:     jar,
		Timeout: 30 * time.Second,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 10 {
				return fmt.Errorf("more than 10 redirects (last %s)", req.URL)
			}
			// The platform's pages say Referrer-Policy: no-referrer, which
			// browsers obey and Go's client does not: the authorize URL
			// (state, code challenge) must not reach the IdP in a Referer.
			req.Header.Del("Referer")
			return loopbackOnly(req.URL)
		},
	}}
}

// loopbackOnly refuses URLs whose host is not a loopback IP literal.
func loopbackOnly(u *url.URL) error {
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to leave loopback: %s", u)
	}
	return nil
}

// page is what the browser shows after a request and its redirects.
type page struct {
	URL    *url.URL // after redirects
	Status int
	Body   string
}

func (b *browser) do(req *http.Request) (*page, error) {
	if err := loopbackOnly(req.URL); err != nil {
		return nil, err
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", resp.Request.URL, err)
	}
	return &page{URL: resp.Request.URL, Status: resp.StatusCode, Body: string(body)}, nil
}

// open is typing a URL in the address bar (or the agent opening one).
func (b *browser) open(u string) (*page, error) {
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	return b.do(req)
}

// submit sends a POST form as application/x-www-form-urlencoded.
func (b *browser) submit(f *form) (*page, error) {
	if f.Method != http.MethodPost {
		return nil, fmt.Errorf("form to %s has method %s; only POST forms are submitted", f.Action, f.Method)
	}
	req, err := http.NewRequest(http.MethodPost, f.Action.String(), strings.NewReader(f.Fields.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

// form is an HTML form with the entries its controls would submit.
type form struct {
	Method string   // GET or POST
	Action *url.URL // resolved against the page's URL
	Fields url.Values
}

// postForm returns the page's first POST form: the sign-in form of a login
// page, or the form that an auto-posting page submits from script.
func (p *page) postForm() (*form, error) {
	forms, err := parseForms(p.URL, p.Body)
	if err != nil {
		return nil, err
	}
	for _, f := range forms {
		if f.Method == http.MethodPost {
			return f, nil
		}
	}
	return nil, fmt.Errorf("no POST form among the %d form(s) of %s", len(forms), p.URL)
}

// String describes a page for a failure message: its URL, status and text.
func (p *page) String() string {
	return fmt.Sprintf("%s (%d): %s", p.URL, p.Status, pageText(p.Body))
}

// parseForms finds a page's forms and, for each, the entries HTML's form
// submission would send: named, enabled inputs (checkboxes and radio
// buttons when checked; not buttons or files), selects (the selected
// option, or the first one) and textareas. Attribute quoting (single,
// double, none) is the HTML parser's business.
func parseForms(base *url.URL, body string) ([]*form, error) {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", base, err)
	}
	var forms []*form
	var walk func(n *html.Node, f *form) error
	walk = func(n *html.Node, f *form) error {
		if n.Type == html.ElementNode {
			name, named := attr(n, "name")
			enabled := named && name != "" && !hasAttr(n, "disabled")
			switch n.DataAtom {
			case atom.Form:
				raw, _ := attr(n, "action")
				action, err := base.Parse(raw) // "" is the page itself
				if err != nil {
					return fmt.Errorf("form action %q on %s: %w", raw, base, err)
				}
				method, _ := attr(n, "method")
				f = &form{Method: strings.ToUpper(method), Action: action, Fields: url.Values{}}
				if f.Method != http.MethodPost {
					f.Method = http.MethodGet
				}
				forms = append(forms, f)
			case atom.Input:
				if f == nil || !enabled {
					break
				}
				typ, _ := attr(n, "type")
				value, hasValue := attr(n, "value")
				switch strings.ToLower(typ) {
				case "submit", "button", "reset", "image", "file":
				case "checkbox", "radio":
					if hasAttr(n, "checked") {
						if !hasValue {
							value = "on"
						}
						f.Fields.Add(name, value)
					}
				default:
					f.Fields.Add(name, value)
				}
			case atom.Select:
				if f != nil && enabled {
					if v, ok := selected(n); ok {
						f.Fields.Add(name, v)
					}
				}
				return nil
			case atom.Textarea:
				if f != nil && enabled {
					f.Fields.Add(name, text(n))
				}
				return nil
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if err := walk(c, f); err != nil {
				return err
			}
		}
		return nil
	}
	return forms, walk(doc, nil)
}

// selected is the value a single select submits: its selected option, or
// else its first; an option's value is its value attribute, or else its
// text with white space collapsed.
func selected(sel *html.Node) (string, bool) {
	var first, chosen *html.Node
	var find func(n *html.Node)
	find = func(n *html.Node) {
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.ElementNode && c.DataAtom == atom.Option && !hasAttr(c, "disabled") {
				if first == nil {
					first = c
				}
				if hasAttr(c, "selected") {
					chosen = c
				}
			}
			find(c)
		}
	}
	find(sel)
	if chosen == nil {
		chosen = first
	}
	if chosen == nil {
		return "", false
	}
	if v, ok := attr(chosen, "value"); ok {
		return v, true
	}
	return strings.Join(strings.Fields(text(chosen)), " "), true
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Namespace == "" && a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasAttr(n *html.Node, key string) bool {
	_, ok := attr(n, key)
	return ok
}

// text is the text content of a node.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}

// pageText is the visible text of a page, white space collapsed and cut at
// 2000 characters: what a person reading the page would see.
func pageText(body string) string {
	doc, err := html.Parse(strings.NewReader(body))
	if err != nil {
		return body
	}
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && (n.DataAtom == atom.Script || n.DataAtom == atom.Style) {
			return
		}
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
			b.WriteByte(' ')
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	s := strings.Join(strings.Fields(b.String()), " ")
	if len(s) > 2000 {
		s = s[:2000] + " …"
	}
	return s
}
