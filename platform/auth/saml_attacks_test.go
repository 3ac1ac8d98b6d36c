package auth_test

// The SAML ACS against bad input and attacks. Every case drives the real
// ACS endpoint over loopback with a crafted SAMLResponse and checks that it
// is refused: 400 or 403 with the error page, no redirect (so no code
// reaches the app), no login.success, and a login.failure audit event whose
// reason names the check that fired. Naming the check matters: a crafted
// response that fails for an unrelated reason (a broken re-signature, say)
// would otherwise pass without testing anything. Controls show that the
// same crafting, minus the attack, signs in.
//
// Responses start as genuine ones from crewjam's samlidp (see samlEnv) and
// are changed with etree; where an attack needs a valid signature on a
// changed element, it is re-signed with the tenant IdP's own key, so the
// refusal can only come from the check under test. The cases follow the
// invalid-response suites of crewjam/saml, python3-saml and ruby-saml and
// the advisories named at each test.

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml/xmlenc"

	"vigie/platform/auth"
	"vigie/platform/demo"
	"vigie/platform/platformtest"
	"vigie/platform/store"
)

// The attacker: a real account at the tenant's IdP that is not enabled for
// Vigie (not in the directory; just-in-time provisioning is off). Mallory
// can get genuine signed responses about herself and wants to become the
// victimUser, alice. If the SP ever consumed the forged part of a response,
// alice would be signed in; if it consumed mallory's genuine part, the
// refusal names mallory.
const (
	malloryLogin    = "mallory"
	malloryEmail    = "mallory@demo.example"
	malloryPassword = "mallory-pw"
)

var victimUser = demo.Users[0] // alice, user demo-alice

// startAttackEnv is startSAMLEnv with mallory at the IdP.
func startAttackEnv(t *testing.T) *samlEnv {
	t.Helper()
	e := startSAMLEnv(t)
	if err := e.idp.AddUser(malloryLogin, malloryEmail, malloryPassword, nil); err != nil {
		t.Fatal(err)
	}
	return e
}

// assertionOf returns the response's only direct Assertion child.
func assertionOf(t *testing.T, doc *etree.Document) *etree.Element {
	t.Helper()
	return xmlPath(t, doc.Root(), "Assertion")
}

// setNameID replaces the assertion's NameID.
func setNameID(t *testing.T, a *etree.Element, v string) {
	t.Helper()
	xmlPath(t, a, "Subject", "NameID").SetText(v)
}

// evilCopy is the attacker's assertion: a copy of the genuine one, about
// the victimUser, with its own ID and no signature.
func evilCopy(t *testing.T, genuine *etree.Element) *etree.Element {
	t.Helper()
	evil := genuine.Copy()
	stripSig(t, evil)
	evil.CreateAttr("ID", "id-evil-assertion")
	setNameID(t, evil, victimUser.Email)
	return evil
}

// addExtensions inserts an empty samlp:Extensions into the response where the
// schema allows it (before Status) and returns it: a place the SP must not
// look for assertions.
func addExtensions(t *testing.T, resp *etree.Element) *etree.Element {
	t.Helper()
	ext := etree.NewElement("samlp:Extensions")
	resp.InsertChildAt(xmlPath(t, resp, "Status").Index(), ext)
	return ext
}

// dsObject appends a ds:Object to a signature and returns it: XML-DSig
// allows arbitrary content there, a classic hiding place for wrapping.
func dsObject(sig *etree.Element) *etree.Element {
	return sig.CreateElement("ds:Object")
}

// attackCase is one crafted response: mutate turns a genuine response into
// the attack; want is part of the refusal reason the audit event must show.
type attackCase struct {
	name   string
	mutate func(t *testing.T, doc *etree.Document)
	want   string
}

// runAttacks signs in as login for each case, crafts the response and
// checks the ACS refuses it.
func runAttacks(t *testing.T, e *samlEnv, login, password string, cases []attackCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			post := e.signIn(t, login, password)
			doc := parseSAML(t, post.SAMLResponse)
			tc.mutate(t, doc)
			post.SAMLResponse = encodeSAML(t, doc)
			e.wantRefused(t, e.post(t, post.Values()), tc.want)
		})
	}
}

// TestACSRefusesUnsignedOrForeignSignatures: the IdP's signature is the
// only thing that makes a response more than a claim typed by whoever holds
// the browser, so a response must carry a valid signature by the key in the
// tenant's IdP metadata — never one the message brings along in KeyInfo.
func TestACSRefusesUnsignedOrForeignSignatures(t *testing.T) {
	t.Parallel()
	e := startAttackEnv(t)
	_, otherKey, otherCert := newIdPKeys(t) // a second key pair claiming the same entity ID
	runAttacks(t, e, malloryLogin, malloryPassword, []attackCase{
		{"response and assertion unsigned", func(t *testing.T, doc *etree.Document) {
			// Both signatures removed: a plain claim that mallory is alice.
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			stripSig(t, a)
			setNameID(t, a, victimUser.Email)
		}, "signature element not present"},
		{"assertion signature removed under the signed response", func(t *testing.T, doc *etree.Document) {
			// The response signature covers the assertion: removing
			// anything inside it breaks it.
			a := assertionOf(t, doc)
			stripSig(t, a)
			setNameID(t, a, victimUser.Email)
		}, "cannot validate signature on Response"},
		{"NameID changed under both signatures", func(t *testing.T, doc *etree.Document) {
			setNameID(t, assertionOf(t, doc), victimUser.Email)
		}, "cannot validate signature on Response"},
		{"NameID changed, response signature removed", func(t *testing.T, doc *etree.Document) {
			// Without a response signature the assertion's own must hold.
			stripSig(t, doc.Root())
			setNameID(t, assertionOf(t, doc), victimUser.Email)
		}, "cannot validate signature on Assertion"},
		{"signed by another key, its certificate in KeyInfo", func(t *testing.T, doc *etree.Document) {
			// An attacker's IdP with the tenant IdP's entity ID: the
			// certificate in the message must not be trusted.
			a := assertionOf(t, doc)
			setNameID(t, a, victimUser.Email)
			signXML(t, a, otherKey, otherCert)
			signXML(t, doc.Root(), otherKey, otherCert)
		}, "cannot validate signature on Response"},
		{"assertion signed by another key, response unsigned", func(t *testing.T, doc *etree.Document) {
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			setNameID(t, a, victimUser.Email)
			signXML(t, a, otherKey, otherCert)
		}, "cannot validate signature on Assertion"},
		{"signed by another key, no KeyInfo", func(t *testing.T, doc *etree.Document) {
			// Without a certificate in the message the SP checks against
			// the metadata's key, which did not sign this.
			a := assertionOf(t, doc)
			setNameID(t, a, victimUser.Email)
			signXML(t, a, otherKey, otherCert)
			signXML(t, doc.Root(), otherKey, otherCert)
			for _, el := range []*etree.Element{a, doc.Root()} {
				sig := xmlChild(t, el, nsDSig, "Signature")
				sig.RemoveChild(xmlChild(t, sig, nsDSig, "KeyInfo"))
			}
		}, "cannot validate signature on Response"},
	})
}

// TestACSRefusesSignatureWrapping: XML signature wrapping (XSW) keeps a
// genuine signed element somewhere in the document, so the signature
// verifies, and puts a forged element where the SP reads its data. The SP
// must consume exactly the element the signature covers. Mallory's genuine
// response is the raw material; the forged assertion says alice.
// (CVE-2022-41912 in crewjam/saml, dexidp/dex#895, SAMLRaider XSW1–8.)
func TestACSRefusesSignatureWrapping(t *testing.T) {
	t.Parallel()
	e := startAttackEnv(t)
	notInDirectory := `"` + malloryEmail + `" is not in the directory` // mallory's genuine assertion was the one used
	runAttacks(t, e, malloryLogin, malloryPassword, []attackCase{
		{"forged assertion before the signed one", func(t *testing.T, doc *etree.Document) {
			// Two assertions, the unsigned forgery first: an SP that reads
			// "the first assertion" after checking "a signature" is fooled.
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			doc.Root().InsertChildAt(a.Index(), evilCopy(t, a))
		}, notInDirectory},
		{"forged assertion after the signed one", func(t *testing.T, doc *etree.Document) {
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			doc.Root().AddChild(evilCopy(t, a))
		}, notInDirectory},
		{"forged assertion with the signed one's ID and signature", func(t *testing.T, doc *etree.Document) {
			// ID collision: the forgery claims the signed assertion's ID
			// and carries its signature; the genuine one follows.
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			evil := evilCopy(t, a)
			evil.CreateAttr("ID", a.SelectAttrValue("ID", ""))
			evil.InsertChildAt(xmlChild(t, evil, nsAssertion, "Issuer").Index()+1, xmlChild(t, a, nsDSig, "Signature").Copy())
			doc.Root().InsertChildAt(a.Index(), evil)
		}, notInDirectory},
		{"signed assertion moved into Extensions", func(t *testing.T, doc *etree.Document) {
			// The signed assertion hides in samlp:Extensions; the only
			// assertion where the SP looks is the unsigned forgery.
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			evil := evilCopy(t, a)
			doc.Root().RemoveChild(a)
			addExtensions(t, doc.Root()).AddChild(a)
			doc.Root().AddChild(evil)
		}, "signature element not present"},
		{"signed assertion inside the forgery's Signature Object", func(t *testing.T, doc *etree.Document) {
			// The forgery takes the genuine ID and signature; the genuine
			// assertion, which the reference could resolve to, sits in
			// ds:Object inside that signature.
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			evil := evilCopy(t, a)
			evil.CreateAttr("ID", a.SelectAttrValue("ID", ""))
			sig := xmlChild(t, a, nsDSig, "Signature").Copy()
			evil.InsertChildAt(xmlChild(t, evil, nsAssertion, "Issuer").Index()+1, sig)
			doc.Root().RemoveChild(a)
			dsObject(sig).AddChild(a)
			doc.Root().AddChild(evil)
		}, "cannot validate signature on Assertion"},
		{"forged assertion wrapping the signed one", func(t *testing.T, doc *etree.Document) {
			// The signed assertion is a child of the forgery, so a
			// signature is "in" the consumed element, one level down.
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			evil := evilCopy(t, a)
			doc.Root().RemoveChild(a)
			evil.AddChild(a)
			doc.Root().AddChild(evil)
		}, "signature element not present"},
		{"forged assertion added under the signed response", func(t *testing.T, doc *etree.Document) {
			// Keeping the response signature: it covers every child, so
			// an added assertion breaks it.
			a := assertionOf(t, doc)
			doc.Root().InsertChildAt(a.Index(), evilCopy(t, a))
		}, "cannot validate signature on Response"},
		{"forged response wrapping the signed response in its Signature", func(t *testing.T, doc *etree.Document) {
			// XSW1: a forged response with the genuine response's ID and
			// signature; the genuine response sits in ds:Object.
			genuine := doc.Root()
			evil := genuine.Copy()
			a := xmlPath(t, evil, "Assertion")
			evil.RemoveChild(a)
			evil.AddChild(evilCopy(t, a))
			sig := xmlChild(t, evil, nsDSig, "Signature")
			stripSig(t, genuine)
			dsObject(sig).AddChild(genuine)
			doc.SetRoot(evil)
		}, "cannot validate signature on Response"},
		{"forged response carrying the signed response in Extensions", func(t *testing.T, doc *etree.Document) {
			// XSW2: a forged response with its own ID carries the genuine
			// signature, whose reference points at the genuine response
			// now inside Extensions.
			genuine := doc.Root()
			evil := genuine.Copy()
			evil.CreateAttr("ID", "id-evil-response")
			a := xmlPath(t, evil, "Assertion")
			evil.RemoveChild(a)
			evil.AddChild(evilCopy(t, a))
			stripSig(t, genuine)
			addExtensions(t, evil).AddChild(genuine)
			doc.SetRoot(evil)
		}, "cannot validate signature on Response"},
		{"forged assertion encrypted to the SP", func(t *testing.T, doc *etree.Document) {
			// The SP's encryption certificate is public: anyone can make
			// an EncryptedAssertion. Decrypting is not authenticating.
			stripSig(t, doc.Root())
			a := assertionOf(t, doc)
			evil := evilCopy(t, a)
			doc.Root().RemoveChild(a)
			doc.Root().AddChild(encryptToSP(t, e, evil))
		}, "signature element not present"},
	})
}

// encryptToSP wraps an assertion in an EncryptedAssertion for the SP's
// public encryption certificate, as an IdP would.
func encryptToSP(t *testing.T, e *samlEnv, a *etree.Element) *etree.Element {
	t.Helper()
	d := etree.NewDocument()
	d.SetRoot(a)
	plain, err := d.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	enc := xmlenc.OAEP()
	enc.BlockCipher = xmlenc.AES128CBC
	data, err := enc.Encrypt(e.spCert, plain, nil)
	if err != nil {
		t.Fatal(err)
	}
	data.CreateAttr("Type", "http://www.w3.org/2001/04/xmlenc#Element")
	ea := etree.NewElement("saml:EncryptedAssertion")
	ea.AddChild(data)
	return ea
}

// TestACSRefusesCommentInjectedNameID: canonicalisation drops comments, so
// a comment added inside a signed NameID keeps the signature valid. An SP
// that reads only the first text node of
// "alice@demo.example<!-- x -->.evil.example" signs in alice, when the IdP
// vouched for the account "alice@demo.example.evil.example", which anyone
// able to choose an e-mail address at the IdP can own (Duo's 2018 SAML
// advisories, CVE-2017-11427 and siblings). The SP must read the whole
// signed value or refuse.
func TestACSRefusesCommentInjectedNameID(t *testing.T) {
	t.Parallel()
	e := startSAMLEnv(t)
	const owned = "alice@demo.example.evil.example"
	if err := e.idp.AddUser("eve", owned, "eve-pw", nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keep func(t *testing.T, doc *etree.Document) // which signatures stay
	}{
		{"both signatures kept", func(*testing.T, *etree.Document) {}},
		{"assertion signature only", func(t *testing.T, doc *etree.Document) { stripSig(t, doc.Root()) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			post := e.signIn(t, "eve", "eve-pw")
			doc := parseSAML(t, post.SAMLResponse)
			tc.keep(t, doc)
			nameID := xmlPath(t, assertionOf(t, doc), "Subject", "NameID")
			if nameID.Text() != owned {
				t.Fatalf("NameID %q, want %q", nameID.Text(), owned)
			}
			nameID.SetText("alice@demo.example")
			nameID.CreateComment(" x ")
			nameID.CreateText(".evil.example")
			post.SAMLResponse = encodeSAML(t, doc)
			raw, _ := base64.StdEncoding.DecodeString(post.SAMLResponse)
			if !strings.Contains(string(raw), "alice@demo.example<!-- x -->.evil.example</saml:NameID>") {
				t.Fatalf("comment not injected:\n%s", raw)
			}
			r := e.post(t, post.Values())
			// Refused either because the signature no longer holds or,
			// having read the whole value, because the owned account is
			// not in the directory; wantRefused also checks alice is not
			// signed in.
			e.wantRefused(t, r, "")
			if reasons := r.reasons(); len(reasons) == 1 && !strings.Contains(reasons[0], "signature") && !strings.Contains(reasons[0], `"`+owned+`" is not in the directory`) {
				t.Errorf("refused for %q, want a signature failure or the whole NameID %q", reasons[0], owned)
			}
		})
	}
}

// TestACSChecksConditions: a genuinely signed assertion is only good for
// this SP (Audience), this endpoint (Destination, Recipient), this issuer
// and a short time. Each case changes one field and re-signs with the
// tenant IdP's key, so only the check under test can refuse it; the
// controls show the re-signing itself is accepted.
func TestACSChecksConditions(t *testing.T) {
	t.Parallel()
	e := startSAMLEnv(t)
	otherSP := e.p.BaseURL + "/t/other" // another tenant's SP on the same platform, maybe trusting the same IdP
	now := time.Now()
	past, future := samlTime(now.Add(-10*time.Minute)), samlTime(now.Add(10*time.Minute)) // well beyond the 180 s skew
	scd := func(t *testing.T, doc *etree.Document) *etree.Element {
		return xmlPath(t, assertionOf(t, doc), "Subject", "SubjectConfirmation", "SubjectConfirmationData")
	}
	conditions := func(t *testing.T, doc *etree.Document) *etree.Element {
		return xmlPath(t, assertionOf(t, doc), "Conditions")
	}
	resigned := func(mutate func(t *testing.T, doc *etree.Document)) func(t *testing.T, doc *etree.Document) {
		return func(t *testing.T, doc *etree.Document) {
			mutate(t, doc)
			e.resign(t, doc)
		}
	}

	t.Run("control: re-signed unchanged response", func(t *testing.T) {
		post := e.signIn(t, victimUser.Login, victimUser.Password)
		doc := parseSAML(t, post.SAMLResponse)
		e.resign(t, doc)
		post.SAMLResponse = encodeSAML(t, doc)
		e.wantSignedIn(t, e.post(t, post.Values()), "demo-alice")
	})
	t.Run("control: expired within the clock skew", func(t *testing.T) {
		post := e.signIn(t, victimUser.Login, victimUser.Password)
		doc := parseSAML(t, post.SAMLResponse)
		conditions(t, doc).CreateAttr("NotOnOrAfter", samlTime(now.Add(-time.Minute)))
		scd(t, doc).CreateAttr("NotOnOrAfter", samlTime(now.Add(-time.Minute)))
		e.resign(t, doc)
		post.SAMLResponse = encodeSAML(t, doc)
		e.wantSignedIn(t, e.post(t, post.Values()), "demo-alice")
	})

	runAttacks(t, e, victimUser.Login, victimUser.Password, []attackCase{
		{"Audience of another SP", resigned(func(t *testing.T, doc *etree.Document) {
			// An assertion the IdP issued for another service must not
			// open this one.
			xmlPath(t, conditions(t, doc), "AudienceRestriction", "Audience").SetText(otherSP + "/saml/metadata")
		}), "AudienceRestriction"},
		{"Destination of another ACS", resigned(func(t *testing.T, doc *etree.Document) {
			// A response sent to another endpoint, replayed here.
			doc.Root().CreateAttr("Destination", otherSP+"/saml/acs")
		}), "Destination"},
		{"Destination missing from a signed response", resigned(func(t *testing.T, doc *etree.Document) {
			doc.Root().RemoveAttr("Destination")
		}), "Destination"},
		{"Recipient of another ACS", resigned(func(t *testing.T, doc *etree.Document) {
			// The bearer confirmation names where the assertion may be
			// presented.
			scd(t, doc).CreateAttr("Recipient", otherSP+"/saml/acs")
		}), "Recipient"},
		{"assertion Issuer is another entity", resigned(func(t *testing.T, doc *etree.Document) {
			xmlPath(t, assertionOf(t, doc), "Issuer").SetText("https://idp.evil.example/metadata")
		}), "issuer is not"},
		{"response Issuer is another entity", resigned(func(t *testing.T, doc *etree.Document) {
			xmlPath(t, doc.Root(), "Issuer").SetText("https://idp.evil.example/metadata")
		}), "response Issuer does not match"},
		{"Conditions expired", resigned(func(t *testing.T, doc *etree.Document) {
			// A captured assertion (proxy log, browser history) must
			// stop working.
			conditions(t, doc).CreateAttr("NotOnOrAfter", past)
		}), "Conditions is expired"},
		{"SubjectConfirmationData expired", resigned(func(t *testing.T, doc *etree.Document) {
			scd(t, doc).CreateAttr("NotOnOrAfter", past)
		}), "SubjectConfirmationData is expired"},
		{"assertion issued long ago", resigned(func(t *testing.T, doc *etree.Document) {
			assertionOf(t, doc).CreateAttr("IssueInstant", past)
		}), "expired on"},
		{"response issued long ago", resigned(func(t *testing.T, doc *etree.Document) {
			doc.Root().CreateAttr("IssueInstant", past)
		}), "response IssueInstant expired"},
		{"Conditions not yet valid", resigned(func(t *testing.T, doc *etree.Document) {
			// Minted ahead of time (or by an IdP with a wrong clock) to
			// be used later.
			conditions(t, doc).CreateAttr("NotBefore", future)
		}), "not yet valid"},
	})
}

// TestACSRefusesReplayedAssertion: a bearer assertion captured once (proxy
// logs, a shared computer's history, a malicious browser extension) must
// not sign in twice. The pending request is single use, so a plain replay
// fails there first; with the pending request re-created under the same ID
// (as a store race or a restored backup might), the assertion ID cache
// must still refuse it.
func TestACSRefusesReplayedAssertion(t *testing.T) {
	t.Parallel()
	e := startSAMLEnv(t)
	post := e.signIn(t, victimUser.Login, victimUser.Password)
	e.wantSignedIn(t, e.post(t, post.Values()), "demo-alice")

	t.Run("pending request used", func(t *testing.T) {
		e.wantRefused(t, e.post(t, post.Values()), "no pending sign-in")
	})
	t.Run("pending request re-created", func(t *testing.T) {
		_, challenge := platformtest.PKCE()
		now := time.Now()
		ar := &store.AuthRequest{Tenant: e.p.Tenant, ID: post.RelayState, RedirectURI: e.callback.URL, CodeChallenge: challenge,
			State: "st", CreatedAt: now, ExpiresAt: now.Add(auth.AuthRequestTTL)}
		if err := e.p.Server.Store.PutAuthRequest(t.Context(), ar); err != nil {
			t.Fatal(err)
		}
		e.wantRefused(t, e.post(t, post.Values()), "replayed")
	})
}

// TestACSBindsResponseToRequest: a response is good only for the sign-in
// that asked for it. Otherwise an attacker could inject a response of
// theirs into a victim's flow (login CSRF: the victim's agent ends up
// signed in as the attacker), or use a response obtained for one flow in
// another. Unsolicited (IdP-initiated) responses carry no such binding and
// are refused.
func TestACSBindsResponseToRequest(t *testing.T) {
	t.Parallel()
	e := startSAMLEnv(t)
	unsolicited := func(t *testing.T, doc *etree.Document) {
		doc.Root().RemoveAttr("InResponseTo")
		xmlPath(t, assertionOf(t, doc), "Subject", "SubjectConfirmation", "SubjectConfirmationData").RemoveAttr("InResponseTo")
		e.resign(t, doc)
	}
	t.Run("response for request A with request B's RelayState", func(t *testing.T) {
		a := e.signIn(t, victimUser.Login, victimUser.Password)
		b := e.pending(t)
		e.wantRefused(t, e.post(t, url.Values{"SAMLResponse": {a.SAMLResponse}, "RelayState": {b}}), "InResponseTo")
	})
	t.Run("assertion bound to another request", func(t *testing.T) {
		// The envelope names this request but the assertion's bearer
		// confirmation names another: both must match.
		post := e.signIn(t, victimUser.Login, victimUser.Password)
		doc := parseSAML(t, post.SAMLResponse)
		xmlPath(t, assertionOf(t, doc), "Subject", "SubjectConfirmation", "SubjectConfirmationData").CreateAttr("InResponseTo", "id-another-request")
		e.resign(t, doc)
		post.SAMLResponse = encodeSAML(t, doc)
		e.wantRefused(t, e.post(t, post.Values()), "SubjectConfirmation one of the possible request IDs")
	})
	t.Run("IdP-initiated without RelayState", func(t *testing.T) {
		post := e.signIn(t, victimUser.Login, victimUser.Password)
		doc := parseSAML(t, post.SAMLResponse)
		unsolicited(t, doc)
		e.wantRefused(t, e.post(t, url.Values{"SAMLResponse": {encodeSAML(t, doc)}}), "no pending sign-in")
	})
	t.Run("IdP-initiated with a pending RelayState", func(t *testing.T) {
		post := e.signIn(t, victimUser.Login, victimUser.Password)
		doc := parseSAML(t, post.SAMLResponse)
		unsolicited(t, doc)
		e.wantRefused(t, e.post(t, url.Values{"SAMLResponse": {encodeSAML(t, doc)}, "RelayState": {e.pending(t)}}), "InResponseTo")
	})
}

// TestACSRefusesMalformedInput: whatever arrives at the ACS is attacker
// input, posted by any browser. Failure statuses, broken encodings,
// documents of the wrong kind and oversized bodies must all end in a
// refusal that is audited, never in a crash, a hang or a sign-in.
func TestACSRefusesMalformedInput(t *testing.T) {
	t.Parallel()
	e := startSAMLEnv(t)
	// Each case returns the form's SAMLResponse and RelayState: a
	// response crafted from a genuine one keeps its sign-in's RelayState,
	// a synthetic one gets a fresh pending sign-in's.
	genuine := func(t *testing.T) (*etree.Document, []byte, string) {
		post := e.signIn(t, victimUser.Login, victimUser.Password)
		raw, _ := base64.StdEncoding.DecodeString(post.SAMLResponse)
		return parseSAML(t, post.SAMLResponse), raw, post.RelayState
	}
	synthetic := func(t *testing.T, xml string) (string, string) {
		return base64.StdEncoding.EncodeToString([]byte(xml)), e.pending(t)
	}
	for _, tc := range []struct {
		name string
		form func(t *testing.T) (samlResponse, relayState string)
		want string
	}{
		{"status not Success", func(t *testing.T) (string, string) {
			// A signed "Responder" failure that still carries a valid
			// assertion: the status decides.
			doc, _, relay := genuine(t)
			xmlPath(t, doc.Root(), "Status", "StatusCode").CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Responder")
			e.resign(t, doc)
			return encodeSAML(t, doc), relay
		}, "status:Responder"},
		{"not base64", func(t *testing.T) (string, string) { return "%%% not base64 %%%", e.pending(t) }, "base64"},
		{"empty", func(t *testing.T) (string, string) { return "", e.pending(t) }, "invalid xml"},
		{"malformed attribute", func(t *testing.T) (string, string) {
			// Round-trip breakers: parsers disagree on such input, which is
			// what XML mutation attacks feed on (GHSA-4hq8-gmxx-h6w9).
			return synthetic(t, `<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ::foo="bar"></samlp:Response>`)
		}, "invalid xml"},
		{"truncated", func(t *testing.T) (string, string) {
			_, raw, relay := genuine(t)
			return base64.StdEncoding.EncodeToString(raw[:len(raw)/2]), relay
		}, "invalid XML"},
		{"root is not a Response", func(t *testing.T) (string, string) {
			return synthetic(t, `<hello xmlns="urn:oasis:names:tc:SAML:2.0:protocol"/>`)
		}, "expected element type <Response>"},
		{"bare signed assertion as root", func(t *testing.T) (string, string) {
			// A genuinely signed assertion without its response: the
			// signature holds, the shape does not.
			doc, _, relay := genuine(t)
			d := etree.NewDocument()
			d.SetRoot(assertionOf(t, doc))
			return encodeSAML(t, d), relay
		}, "expected element type <Response>"},
		{"entity expansion", func(t *testing.T) (string, string) {
			// "Billion laughs": must not expand (or must refuse) rather
			// than exhaust memory.
			var dtd strings.Builder
			dtd.WriteString(`<!DOCTYPE samlp:Response [<!ENTITY l0 "lol">`)
			for i := 1; i < 10; i++ {
				fmt.Fprintf(&dtd, `<!ENTITY l%d "%s">`, i, strings.Repeat(fmt.Sprintf("&l%d;", i-1), 10))
			}
			dtd.WriteString(`]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&l9;</samlp:Response>`)
			return synthetic(t, dtd.String())
		}, "invalid character entity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, relay := tc.form(t)
			e.wantRefused(t, e.post(t, url.Values{"SAMLResponse": {resp}, "RelayState": {relay}}), tc.want)
		})
	}

	t.Run("artifact binding", func(t *testing.T) {
		// The SP's metadata lists an HTTP-Artifact ACS, but this IdP has
		// no artifact resolution service: an artifact must be refused.
		// TestACSDoesNotResolveArtifacts covers an IdP that has one.
		e.wantRefused(t, e.post(t, url.Values{"SAMLart": {"AAQAAMFbLinlXaCM+FIxiDwGOLAy2T71gbpO7ZhNzAgEANlB90ECfpNEVLg="}, "RelayState": {e.pending(t)}}), "artifact")
	})
	t.Run("body over 1 MiB", func(t *testing.T) {
		// The ACS reads at most 1 MiB; a bigger body is refused before any
		// XML parsing, and audited like every other refusal.
		body := "RelayState=" + url.QueryEscape(e.pending(t)) + "&SAMLResponse=" + strings.Repeat("A", 2<<20)
		e.wantRefused(t, e.postTo(t, e.p.URL("/saml/acs"), "application/x-www-form-urlencoded", strings.NewReader(body)), "request body too large")
	})
	t.Run("form not URL-encoded", func(t *testing.T) {
		body := "RelayState=" + url.QueryEscape(e.pending(t)) + "&SAMLResponse=%zz"
		e.wantRefused(t, e.postTo(t, e.p.URL("/saml/acs"), "application/x-www-form-urlencoded", strings.NewReader(body)), "invalid URL escape")
	})
}

// TestACSDoesNotResolveArtifacts: the login flow uses the HTTP-POST
// binding only, yet crewjam's ParseResponse resolves any SAMLart form (or
// query) value by calling the IdP's ArtifactResolutionService from the
// server, with http.DefaultClient (no timeout). Many IdPs' metadata list
// one (Shibboleth's does). Anyone can open a pending sign-in at the
// authorize endpoint, so anyone could then make the platform send requests
// to the IdP at will, each holding a handler until the IdP answers. The
// ACS must refuse an artifact without any outbound request.
func TestACSDoesNotResolveArtifacts(t *testing.T) {
	t.Parallel()
	e := startSAMLEnv(t)
	var calls atomic.Int32
	ars := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "no such artifact", http.StatusInternalServerError)
	}))
	t.Cleanup(ars.Close)
	md, err := e.idp.Metadata()
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(md); err != nil {
		t.Fatal(err)
	}
	idpSSO := doc.FindElement("//IDPSSODescriptor")
	if idpSSO == nil {
		t.Fatalf("no IDPSSODescriptor in\n%s", md)
	}
	ar := etree.NewElement("ArtifactResolutionService")
	ar.CreateAttr("Binding", "urn:oasis:names:tc:SAML:2.0:bindings:SOAP")
	ar.CreateAttr("Location", ars.URL+"/artifact")
	ar.CreateAttr("index", "0")
	idpSSO.InsertChildAt(idpSSO.FindElement("SingleSignOnService").Index(), ar)
	md, err = doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	e.setIdPMetadata(t, md)

	const artifact = "AAQAAMFbLinlXaCM+FIxiDwGOLAy2T71gbpO7ZhNzAgEANlB90ECfpNEVLg="
	for _, tc := range []struct {
		name string
		post func(t *testing.T) acsResult
	}{
		{"in the form", func(t *testing.T) acsResult {
			return e.post(t, url.Values{"SAMLart": {artifact}, "RelayState": {e.pending(t)}})
		}},
		{"in the query", func(t *testing.T) acsResult {
			form := url.Values{"RelayState": {e.pending(t)}}
			return e.postTo(t, e.p.URL("/saml/acs?SAMLart="+url.QueryEscape(artifact)), "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := calls.Load()
			e.wantRefused(t, tc.post(t), "artifact")
			if n := calls.Load() - before; n != 0 {
				t.Errorf("the ACS sent %d artifact resolution request(s) to the IdP for an unauthenticated post", n)
			}
		})
	}
}
