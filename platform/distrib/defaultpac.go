package distrib

import (
	"encoding/json"
	"strings"
)

// defaultPAC is the PAC file of a tenant that set none; GATEWAY is replaced
// by the gateway's PAC element as a JavaScript string literal.
//
// Only IP literals are tested against private networks: a name is never
// resolved, so routing costs no DNS lookup and tells the local resolver
// nothing. A private host reached by name through the gateway fails there,
// which is the administrator's cue to write a PAC file for the network.
const defaultPAC = `// Vigie's default proxy.pac: every request goes through the tenant's
// gateway, except plain host names, local names and private networks,
// which the gateway cannot reach. Set the tenant's own with
// PUT /api/v1/tenants/{tenant}/pac.
var gateway = GATEWAY;

function FindProxyForURL(url, host) {
	host = host.toLowerCase();
	if (isPlainHostName(host) || host === "localhost" ||
		dnsDomainIs(host, ".localhost") || dnsDomainIs(host, ".local")) {
		return "DIRECT";
	}
	var ip = host.replace(/^\[(.*)\]$/, "$1");
	if (isInNetEx(ip, "10.0.0.0/8") || isInNetEx(ip, "172.16.0.0/12") ||
		isInNetEx(ip, "192.168.0.0/16") || isInNetEx(ip, "127.0.0.0/8") ||
		isInNetEx(ip, "169.254.0.0/16") || isInNetEx(ip, "100.64.0.0/10") ||
		isInNetEx(ip, "::1/128") || isInNetEx(ip, "fc00::/7") ||
		isInNetEx(ip, "fe80::/10")) {
		return "DIRECT";
	}
	return gateway;
}
`

// DefaultPAC returns the default PAC file for a gateway at host:port.
func DefaultPAC(gateway string) []byte {
	lit, _ := json.Marshal("PROXY " + gateway) // a JSON string is a JavaScript string literal
	return []byte(strings.Replace(defaultPAC, "GATEWAY", string(lit), 1))
}
