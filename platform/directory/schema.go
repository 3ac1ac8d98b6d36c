package directory

import "strings"

// URNs of the schemas and messages this server speaks.
const (
	schemaUser       = "urn:ietf:params:scim:schemas:core:2.0:User"
	schemaGroup      = "urn:ietf:params:scim:schemas:core:2.0:Group"
	schemaEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
	schemaSPConfig   = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"
	schemaResType    = "urn:ietf:params:scim:schemas:core:2.0:ResourceType"
	schemaSchema     = "urn:ietf:params:scim:schemas:core:2.0:Schema"
	schemaList       = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
	schemaPatchOp    = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
	schemaError      = "urn:ietf:params:scim:api:messages:2.0:Error"
)

// Attribute data types (RFC 7643 §2.3).
const (
	typeString    = "string"
	typeBoolean   = "boolean"
	typeDecimal   = "decimal"
	typeInteger   = "integer"
	typeDateTime  = "dateTime"
	typeReference = "reference"
	typeComplex   = "complex"
)

// attr describes one attribute. The same definitions drive /Schemas, the
// validation and coercion of what clients write, the case rules of
// filters, and the resolution of PATCH paths, so that what we announce is
// what we do.
type attr struct {
	Name        string
	Type        string
	Multi       bool
	Required    bool
	CaseExact   bool
	Uniqueness  string
	Description string
	Canonical   []string
	RefTypes    []string
	Sub         []*attr
}

func (a *attr) sub(name string) *attr { return findAttr(a.Sub, name) }

// hasValueSub reports whether elements of a are identified by their
// "value" sub-attribute (members, emails, manager…), which is what PATCH
// value filters, removals by value and filter shorthands key on.
func (a *attr) hasValueSub() bool { return a.Type == typeComplex && a.sub("value") != nil }

func findAttr(attrs []*attr, name string) *attr {
	for _, a := range attrs {
		if strings.EqualFold(a.Name, name) {
			return a
		}
	}
	return nil
}

// schema is a SCIM schema: the core one of a resource type or an extension.
type schema struct {
	ID          string
	Name        string
	Description string
	Attrs       []*attr
}

func str(name, desc string) *attr { return &attr{Name: name, Type: typeString, Description: desc} }

func strExact(name, desc string) *attr {
	return &attr{Name: name, Type: typeString, CaseExact: true, Description: desc}
}

func boolean(name, desc string) *attr { return &attr{Name: name, Type: typeBoolean, Description: desc} }

func ref(name, desc string, types ...string) *attr {
	return &attr{Name: name, Type: typeReference, CaseExact: true, RefTypes: types, Description: desc}
}

func complexAttr(name, desc string, multi bool, sub ...*attr) *attr {
	return &attr{Name: name, Type: typeComplex, Multi: multi, Description: desc, Sub: sub}
}

// multiValued builds the usual value/display/type/primary element of a
// multi-valued attribute such as emails or phoneNumbers.
func multiValued(name, desc string, valueType string, canonical ...string) *attr {
	v := &attr{Name: "value", Type: valueType, Description: "the value"}
	return complexAttr(name, desc, true,
		v,
		str("display", "a human-readable name, primarily used for display purposes"),
		&attr{Name: "type", Type: typeString, Canonical: canonical, Description: "a label indicating the attribute's function"},
		boolean("primary", "the primary or preferred value"),
	)
}

// externalID is a common attribute (RFC 7643 §3.1). It is listed in the
// core schemas too because Entra ID's schema discovery looks for every
// attribute it maps, externalId included.
func externalID() *attr {
	return strExact("externalId", "the provisioning client's identifier of the resource")
}

var userSchema = &schema{
	ID:          schemaUser,
	Name:        "User",
	Description: "User Account",
	Attrs: []*attr{
		{Name: "userName", Type: typeString, Required: true, Uniqueness: "server",
			Description: "unique identifier for the user, used to sign in; compared case-insensitively"},
		complexAttr("name", "the components of the user's real name", false,
			str("formatted", "the full name, formatted for display"),
			str("familyName", "the family name"),
			str("givenName", "the given name"),
			str("middleName", "the middle name(s)"),
			str("honorificPrefix", "the honorific prefix(es)"),
			str("honorificSuffix", "the honorific suffix(es)"),
		),
		str("displayName", "the name of the user, suitable for display to end-users"),
		str("nickName", "the casual way to address the user"),
		ref("profileUrl", "a URI of the user's online profile", "external"),
		str("title", "the user's title, such as \"Vice President\""),
		str("userType", "the relationship between the organisation and the user"),
		str("preferredLanguage", "the user's preferred written or spoken language"),
		str("locale", "the user's default location for localisation"),
		str("timezone", "the user's time zone, in IANA format"),
		boolean("active", "whether the user may sign in; false revokes the user's sessions at once"),
		multiValued("emails", "email addresses for the user", typeString, "work", "home", "other"),
		multiValued("phoneNumbers", "phone numbers for the user", typeString, "work", "home", "mobile", "fax", "pager", "other"),
		multiValued("ims", "instant messaging addresses for the user", typeString),
		multiValued("photos", "URLs of photos of the user", typeReference, "photo", "thumbnail"),
		complexAttr("addresses", "physical mailing addresses for the user", true,
			str("formatted", "the full mailing address"),
			str("streetAddress", "the full street address"),
			str("locality", "the city or locality"),
			str("region", "the state or region"),
			str("postalCode", "the zip code or postal code"),
			str("country", "the country name"),
			&attr{Name: "type", Type: typeString, Canonical: []string{"work", "home", "other"}, Description: "a label indicating the attribute's function"},
			boolean("primary", "the primary mailing address"),
		),
		multiValued("entitlements", "entitlements of the user", typeString),
		multiValued("roles", "roles of the user", typeString),
		multiValued("x509Certificates", "certificates of the user (base64 DER)", typeString),
		externalID(),
	},
}

var enterpriseSchema = &schema{
	ID:          schemaEnterprise,
	Name:        "EnterpriseUser",
	Description: "Enterprise User",
	Attrs: []*attr{
		str("employeeNumber", "identifier assigned by the organisation"),
		str("costCenter", "the cost center"),
		str("organization", "the organisation"),
		str("division", "the division"),
		str("department", "the department"),
		complexAttr("manager", "the user's manager", false,
			strExact("value", "the id of the manager's User"),
			ref("$ref", "the URI of the manager's User", "User"),
			str("displayName", "the manager's display name"),
		),
	},
}

var groupSchema = &schema{
	ID:          schemaGroup,
	Name:        "Group",
	Description: "Group",
	Attrs: []*attr{
		{Name: "displayName", Type: typeString, Required: true, Uniqueness: "server",
			Description: "the group's name, unique in the tenant; compared case-insensitively"},
		complexAttr("members", "the users in the group (nested groups are not supported)", true,
			strExact("value", "the id of a User"),
			ref("$ref", "the URI of the User", "User"),
			&attr{Name: "type", Type: typeString, Canonical: []string{"User"}, Description: "the type of member: User"},
			str("display", "the member's display name, accepted and not kept"),
		),
		externalID(),
	},
}

// commonAttrs are the attributes of every resource that no schema lists
// (RFC 7643 §3.1); filters and projections resolve them too.
var commonAttrs = []*attr{
	strExact("id", "the resource's identifier, assigned by the platform"),
	complexAttr("meta", "resource metadata", false,
		strExact("resourceType", ""),
		&attr{Name: "created", Type: typeDateTime},
		&attr{Name: "lastModified", Type: typeDateTime},
		ref("location", ""),
		strExact("version", ""),
	),
}

// resourceType is a SCIM resource type: its endpoint, core schema and
// extensions, and the attributes the store can select on.
type resourceType struct {
	Name       string
	Endpoint   string // relative to the SCIM base, e.g. "/Users"
	Core       *schema
	Extensions []*schema
	// Indexed are the attributes ListQuery can select on with equality.
	Indexed []string
}

var (
	userType = &resourceType{
		Name: "User", Endpoint: "/Users", Core: userSchema, Extensions: []*schema{enterpriseSchema},
		Indexed: []string{"userName", "externalId", "displayName"},
	}
	groupType = &resourceType{
		Name: "Group", Endpoint: "/Groups", Core: groupSchema,
		Indexed: []string{"displayName", "externalId"},
	}
	resourceTypes = []*resourceType{userType, groupType}
)

func (rt *resourceType) extension(urn string) *schema {
	for _, e := range rt.Extensions {
		if strings.EqualFold(e.ID, urn) {
			return e
		}
	}
	return nil
}

// lookup resolves an attribute by an optional schema URN and a name. It
// returns the schema that holds it (nil for common attributes and the core
// schema's attributes) and the attribute, or nil when unknown.
func (rt *resourceType) lookup(urn, name string) (ext *schema, a *attr) {
	switch {
	case urn == "" || strings.EqualFold(urn, rt.Core.ID):
		if a := findAttr(rt.Core.Attrs, name); a != nil {
			return nil, a
		}
		return nil, findAttr(commonAttrs, name)
	default:
		if e := rt.extension(urn); e != nil {
			return e, findAttr(e.Attrs, name)
		}
	}
	return nil, nil
}

// splitURN splits a fully qualified attribute name such as
// "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department"
// into the schema URN and the attribute, when the prefix is a schema of
// rt. Otherwise it returns "" and the name unchanged.
func (rt *resourceType) splitURN(name string) (urn, rest string) {
	for _, id := range rt.schemaIDs() {
		if len(name) > len(id) && name[len(id)] == ':' && strings.EqualFold(name[:len(id)], id) {
			return id, name[len(id)+1:]
		}
	}
	return "", name
}

func (rt *resourceType) schemaIDs() []string {
	ids := []string{rt.Core.ID}
	for _, e := range rt.Extensions {
		ids = append(ids, e.ID)
	}
	return ids
}
