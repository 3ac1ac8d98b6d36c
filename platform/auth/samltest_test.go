package auth_test

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"
	"golang.org/x/net/html"

	"vigie/platform/auth"
	"vigie/platform/demo"
	"vigie/platform/demoidp"
	"vigie/platform/platformtest"
	"vigie/platform/store"
)

// samlIdP is the tenant's identity provider in the attack tests: crewjam's
// samlidp (package demoidp) on its own loopback listener, with a key pair
// the test holds, so that crafted messages can carry real signatures by the
// key the tenant trusts. The demo's own IdP keeps its key in the demo's
// state folder, out of the test's reach.
type samlIdP struct {
	*demoidp.IdP
	URL  string // base URL; the entity ID is URL+"/metadata"
	Key  *rsa.PrivateKey
	Cert *x509.Certificate
}

// newSAMLIdP starts an IdP at a fresh loopback address until the test ends.
func newSAMLIdP(t *testing.T) *samlIdP {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	i := &samlIdP{URL: "http://" + srv.Listener.Addr().String()}
	kp, key, cert := newIdPKeys(t)
	i.Key, i.Cert = key, cert
	idp, err := demoidp.New(i.URL, kp)
	if err != nil {
		t.Fatal(err)
	}
	i.IdP = idp
	srv.Config.Handler = idp.PublicHandler()
	srv.Start()
	t.Cleanup(srv.Close)
	return i
}

// newIdPKeys makes an IdP signing key and certificate the way the demo
// does, PEM-encoded and parsed.
func newIdPKeys(t *testing.T) (*demoidp.KeyPair, *rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	kp, err := demoidp.NewKeyPair(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := pem.Decode([]byte(kp.KeyPEM))
	cb, _ := pem.Decode([]byte(kp.CertPEM))
	if kb == nil || cb == nil {
		t.Fatal("demoidp.NewKeyPair: not PEM")
	}
	key, err := x509.ParsePKCS1PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return kp, key, cert
}

// samlEnv is a running platform whose demo tenant trusts a samlIdP.
type samlEnv struct {
	p        *platformtest.Platform
	idp      *samlIdP
	callback *platformtest.Callback
	spCert   *x509.Certificate // the SP's public encryption certificate, from its metadata
	// noFollow posts like a browser but stops at the first redirect, so a
	// test sees where the ACS would send the browser.
	noFollow *http.Client
}

// startSAMLEnv starts the platform and points the demo tenant at a new
// samlIdP (trust both ways), with the demo users at the IdP.
//
// The IdP is given the SP's metadata without its encryption key, so it
// sends plaintext (signed) assertions that a test can rearrange at the XML
// level. That loses nothing: the SP's encryption certificate is public, so
// encryption gives an attacker no obstacle and the SP must not rely on it
// for integrity.
func startSAMLEnv(t *testing.T) *samlEnv {
	t.Helper()
	p := platformtest.Start(t, platformtest.Options{})
	e := &samlEnv{p: p, idp: newSAMLIdP(t), callback: platformtest.NewCallback(t),
		noFollow: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	md, err := e.idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	e.setIdPMetadata(t, md)

	resp, err := http.Get(p.URL("/saml/metadata"))
	if err != nil {
		t.Fatal(err)
	}
	spMD, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("SP metadata: %d %v", resp.StatusCode, err)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(spMD, &ed); err != nil {
		t.Fatal(err)
	}
	for i := range ed.SPSSODescriptors {
		var kds []saml.KeyDescriptor
		for _, kd := range ed.SPSSODescriptors[i].KeyDescriptors {
			if kd.Use != "encryption" {
				kds = append(kds, kd)
				continue
			}
			der, err := base64.StdEncoding.DecodeString(kd.KeyInfo.X509Data.X509Certificates[0].Data)
			if err != nil {
				t.Fatal(err)
			}
			if e.spCert, err = x509.ParseCertificate(der); err != nil {
				t.Fatal(err)
			}
		}
		ed.SPSSODescriptors[i].KeyDescriptors = kds
	}
	if spMD, err = xml.Marshal(ed); err != nil {
		t.Fatal(err)
	}
	if err := e.idp.AddServiceProvider(p.Tenant, spMD); err != nil {
		t.Fatal(err)
	}
	for _, u := range demo.Users {
		if err := e.idp.AddUser(u.Login, u.Email, u.Password, []string{u.Group}); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// setIdPMetadata makes md the demo tenant's IdP metadata, as an
// administrator would; the SP picks it up on the next request.
func (e *samlEnv) setIdPMetadata(t *testing.T, md []byte) {
	t.Helper()
	ctx := context.Background()
	conf, err := auth.ParseIdPMetadata(md, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	tn, err := e.p.Server.Store.Tenant(ctx, e.p.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	tn.IdP = conf
	if err := e.p.Server.Store.UpdateTenant(ctx, tn); err != nil {
		t.Fatal(err)
	}
}

// samlPost is the IdP's auto-submitted form: what the browser would post
// to the ACS.
type samlPost struct {
	SAMLResponse string // base64, as posted
	RelayState   string
}

// Values is the form to post.
func (s samlPost) Values() url.Values {
	return url.Values{"SAMLResponse": {s.SAMLResponse}, "RelayState": {s.RelayState}}
}

// pending starts a sign-in at the authorize endpoint and stops at the
// redirect to the IdP: it returns the RelayState (the pending AuthRequest's
// ID) without involving the IdP.
func (e *samlEnv) pending(t *testing.T) string {
	t.Helper()
	_, challenge := platformtest.PKCE()
	resp, err := e.noFollow.Get(e.p.AuthorizeURL(e.callback.URL, challenge, "st", nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || resp.StatusCode != http.StatusFound || loc.Query().Get("RelayState") == "" {
		t.Fatalf("authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	return loc.Query().Get("RelayState")
}

// signIn walks a fresh browser from the authorize endpoint through the
// IdP's login form and returns the signed response the IdP hands the
// browser, without posting it.
func (e *samlEnv) signIn(t *testing.T, login, password string) samlPost {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	_, challenge := platformtest.PKCE()
	resp, err := c.Get(e.p.AuthorizeURL(e.callback.URL, challenge, "st", nil))
	for step := 0; step < 3; step++ {
		if err != nil {
			t.Fatalf("sign-in: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		action, fields, ok := firstForm(string(body))
		if !ok {
			t.Fatalf("sign-in: no form at %s (%d):\n%s", resp.Request.URL, resp.StatusCode, body)
		}
		to, perr := resp.Request.URL.Parse(action)
		if perr != nil {
			t.Fatal(perr)
		}
		if fields.Has("SAMLResponse") {
			if to.String() != e.p.URL("/saml/acs") {
				t.Fatalf("the IdP posts to %s, want the tenant's ACS", to)
			}
			return samlPost{SAMLResponse: fields.Get("SAMLResponse"), RelayState: fields.Get("RelayState")}
		}
		if !fields.Has("password") {
			t.Fatalf("sign-in: unexpected form at %s: %v", resp.Request.URL, fields)
		}
		fields.Set("user", login)
		fields.Set("password", password)
		resp, err = c.PostForm(to.String(), fields)
	}
	t.Fatal("sign-in: the IdP did not answer with a SAML response")
	return samlPost{}
}

// firstForm returns the action and inputs of a page's first form.
func firstForm(page string) (action string, fields url.Values, ok bool) {
	z := html.NewTokenizer(strings.NewReader(page))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return action, fields, ok
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		attrs := map[string]string{}
		for _, a := range tok.Attr {
			attrs[a.Key] = a.Val
		}
		switch {
		case tok.Data == "form" && ok:
			return action, fields, ok
		case tok.Data == "form":
			action, fields, ok = attrs["action"], url.Values{}, true
		case tok.Data == "input" && ok && attrs["name"] != "" && attrs["type"] != "submit":
			fields.Set(attrs["name"], attrs["value"])
		}
	}
}

// acsResult is what the ACS answered.
type acsResult struct {
	Status   int
	Location string
	Body     string
	Header   http.Header
	Events   []*store.AuditEvent // audit events the post caused
}

// post sends a form to the tenant's ACS over loopback, as a browser would,
// and collects the audit events it caused.
func (e *samlEnv) post(t *testing.T, form url.Values) acsResult {
	t.Helper()
	return e.postTo(t, e.p.URL("/saml/acs"), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
}

// postTo is post with any URL (the ACS's, with a query) and body.
func (e *samlEnv) postTo(t *testing.T, u, contentType string, body io.Reader) acsResult {
	t.Helper()
	ctx := context.Background()
	before := e.lastAudit(t)
	resp, err := e.noFollow.Post(u, contentType, body)
	if err != nil {
		t.Fatalf("POST ACS: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	events, err := e.p.Server.Store.AuditEvents(ctx, e.p.Tenant, before, 0)
	if err != nil {
		t.Fatal(err)
	}
	return acsResult{Status: resp.StatusCode, Location: resp.Header.Get("Location"), Body: string(b), Header: resp.Header, Events: events}
}

// lastAudit is the sequence number of the tenant's last audit event.
func (e *samlEnv) lastAudit(t *testing.T) int64 {
	t.Helper()
	events, err := e.p.Server.Store.AuditEvents(context.Background(), e.p.Tenant, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) == 0 {
		return 0
	}
	return events[len(events)-1].Seq
}

// reasons are the "reason" details of the result's login.failure events.
func (r acsResult) reasons() []string {
	var out []string
	for _, ev := range r.Events {
		if ev.Action != "login.failure" {
			continue
		}
		var d struct{ Reason string }
		json.Unmarshal(ev.Detail, &d)
		out = append(out, d.Reason)
	}
	return out
}

// signedIn returns the user ID of a login.success event, if any.
func (r acsResult) signedIn() (string, bool) {
	for _, ev := range r.Events {
		if ev.Action == "login.success" {
			return ev.Target, true
		}
	}
	return "", false
}

// wantRefused checks that the ACS refused: 400 or 403 with the HTML error
// page, no redirect (so no code reaches the app), no login, and one
// login.failure audit event whose reason contains want.
func (e *samlEnv) wantRefused(t *testing.T, r acsResult, want string) {
	t.Helper()
	if r.Status != http.StatusForbidden && r.Status != http.StatusBadRequest {
		t.Errorf("status %d, want 403 or 400", r.Status)
	}
	if r.Location != "" {
		t.Errorf("redirected to %q, want no redirect", r.Location)
	}
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "text/html") || !strings.Contains(r.Body, "<h1>") || strings.Contains(r.Body, "code=") {
		t.Errorf("answer is not the error page: %s %q", r.Header.Get("Content-Type"), r.Body)
	}
	if user, ok := r.signedIn(); ok {
		t.Errorf("signed in as %s", user)
	}
	select {
	case q := <-e.callback.Query:
		t.Errorf("the app's callback was called with %v", q)
	default:
	}
	reasons := r.reasons()
	t.Logf("ACS answered %d; login.failure reasons %q", r.Status, reasons)
	if len(reasons) != 1 || !strings.Contains(reasons[0], want) {
		t.Errorf("login.failure reasons %q, want one containing %q (all events: %s)", reasons, want, eventsString(r.Events))
	}
}

// wantSignedIn checks that the ACS accepted and sent the browser to the
// app's callback with a code, for userID.
func (e *samlEnv) wantSignedIn(t *testing.T, r acsResult, userID string) {
	t.Helper()
	loc, err := url.Parse(r.Location)
	if r.Status != http.StatusFound || err != nil || !strings.HasPrefix(r.Location, e.callback.URL) || loc.Query().Get("code") == "" {
		t.Fatalf("ACS answered %d Location %q, want a redirect to the callback with a code; reasons %q", r.Status, r.Location, r.reasons())
	}
	if got, _ := r.signedIn(); got != userID {
		t.Fatalf("signed in as %q, want %q", got, userID)
	}
}

func eventsString(events []*store.AuditEvent) string {
	var b strings.Builder
	for _, ev := range events {
		b.WriteString(ev.Action + " " + string(ev.Detail) + "; ")
	}
	return b.String()
}

// SAML XML: decode, find, change, sign, encode.

const (
	nsProtocol  = "urn:oasis:names:tc:SAML:2.0:protocol"
	nsAssertion = "urn:oasis:names:tc:SAML:2.0:assertion"
	nsDSig      = "http://www.w3.org/2000/09/xmldsig#"
)

// parseSAML decodes a posted SAMLResponse.
func parseSAML(t *testing.T, b64 string) *etree.Document {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	if doc.Root() == nil || doc.Root().Tag != "Response" {
		t.Fatalf("not a SAML Response:\n%s", raw)
	}
	return doc
}

// encodeSAML serialises doc for posting.
func encodeSAML(t *testing.T, doc *etree.Document) string {
	t.Helper()
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(raw)
}

// xmlChild returns el's only direct child with namespace ns and local name tag.
func xmlChild(t *testing.T, el *etree.Element, ns, tag string) *etree.Element {
	t.Helper()
	var found []*etree.Element
	for _, c := range el.ChildElements() {
		if c.Tag == tag && c.NamespaceURI() == ns {
			found = append(found, c)
		}
	}
	if len(found) != 1 {
		t.Fatalf("<%s> has %d <%s> children, want 1", el.Tag, len(found), tag)
	}
	return found[0]
}

// xmlPath follows a chain of direct children by local name within SAML's
// assertion/protocol namespaces, for example xmlPath(t, a, "Subject", "NameID").
func xmlPath(t *testing.T, el *etree.Element, tags ...string) *etree.Element {
	t.Helper()
	for _, tag := range tags {
		ns := nsAssertion
		if tag == "Status" || tag == "StatusCode" || tag == "Extensions" {
			ns = nsProtocol
		}
		el = xmlChild(t, el, ns, tag)
	}
	return el
}

// stripSig removes el's enveloped ds:Signature and returns it.
func stripSig(t *testing.T, el *etree.Element) *etree.Element {
	t.Helper()
	sig := xmlChild(t, el, nsDSig, "Signature")
	el.RemoveChild(sig)
	return sig
}

// signXML (re)signs el in place with an enveloped RSA-SHA256 signature by
// key, placed after the Issuer as the schema wants, the way an IdP would.
// The certificate goes into KeyInfo; the SP must ignore it and use only the
// IdP metadata's.
func signXML(t *testing.T, el *etree.Element, key *rsa.PrivateKey, cert *x509.Certificate) {
	t.Helper()
	for _, c := range el.ChildElements() {
		if c.Tag == "Signature" && c.NamespaceURI() == nsDSig {
			el.RemoveChild(c)
		}
	}
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	if err := ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod); err != nil {
		t.Fatal(err)
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	sig := signed.ChildElements()[len(signed.ChildElements())-1]
	el.InsertChildAt(xmlChild(t, el, nsAssertion, "Issuer").Index()+1, sig)
}

// resign signs the assertion, then the response, with the tenant IdP's
// key: the document becomes one the IdP itself could have sent.
func (e *samlEnv) resign(t *testing.T, doc *etree.Document) {
	t.Helper()
	signXML(t, xmlPath(t, doc.Root(), "Assertion"), e.idp.Key, e.idp.Cert)
	signXML(t, doc.Root(), e.idp.Key, e.idp.Cert)
}

// samlTime is the xs:dateTime form SAML uses.
func samlTime(tm time.Time) string { return tm.UTC().Format("2006-01-02T15:04:05.000Z") }
