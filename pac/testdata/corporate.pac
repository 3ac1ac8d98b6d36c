// Example tenant PAC file: the shape of a large organisation's proxy.pac,
// with the kinds of rules real ones have (see ../../../shared/pac-corpus for
// real files). Used by `go tool task demo`, the golden tests and the
// benchmarks.
//
// Routing: internal names and networks go DIRECT; a few SaaS and update
// services bypass the gateway; banking and health sites are sent to a
// separate non-inspecting proxy; everything else goes to the gateway, with
// DIRECT as the last resort.

var GATEWAY = "PROXY gateway.vigie.example:3128";
var NOINSPECT = "PROXY noinspect.vigie.example:3128";

function FindProxyForURL(url, host) {
    // 1. Plain names and local suffixes.
    if (isPlainHostName(host))
        return "DIRECT";
    if (shExpMatch(host, "*.local") || shExpMatch(host, "*.localdomain") ||
        shExpMatch(host, "*.internal") || shExpMatch(host, "*.lan"))
        return "DIRECT";
    if (host == "localhost" || host == "127.0.0.1" || host == "::1")
        return "DIRECT";

    // 2. The organisation's own domains.
    if (dnsDomainIs(host, ".corp.example.com") ||
        dnsDomainIs(host, ".intra.example.com") ||
        dnsDomainIs(host, ".dev.example.com") ||
        dnsDomainIs(host, ".staging.example.com") ||
        dnsDomainIs(host, ".lab.example.net") ||
        localHostOrDomainIs(host, "wiki.example.com") ||
        localHostOrDomainIs(host, "jira.example.com") ||
        localHostOrDomainIs(host, "intranet.example.com"))
        return "DIRECT";

    // 3. Private and special networks, for hosts given as IPv4 literals.
    if (/^\d+\.\d+\.\d+\.\d+$/.test(host)) {
        if (isInNet(host, "10.0.0.0", "255.0.0.0") ||
            isInNet(host, "172.16.0.0", "255.240.0.0") ||
            isInNet(host, "192.168.0.0", "255.255.0.0") ||
            isInNet(host, "100.64.0.0", "255.192.0.0") ||
            isInNet(host, "169.254.0.0", "255.255.0.0") ||
            isInNet(host, "127.0.0.0", "255.0.0.0"))
            return "DIRECT";
        if (isInNet(host, "198.51.100.0", "255.255.255.0") ||
            isInNet(host, "203.0.113.0", "255.255.255.0"))
            return NOINSPECT;
    }

    // 4. Services that must not go through the gateway.
    if (dnsDomainIs(host, ".windowsupdate.com") ||
        dnsDomainIs(host, ".update.microsoft.com") ||
        dnsDomainIs(host, ".delivery.mp.microsoft.com") ||
        shExpMatch(host, "*.apple.com") && shExpMatch(host, "*swcdn*") ||
        dnsDomainIs(host, ".zoom.us") ||
        dnsDomainIs(host, ".teams.microsoft.com") ||
        dnsDomainIs(host, ".webex.com") ||
        shExpMatch(host, "updates.vendor.example") ||
        shExpMatch(host, "*.vpn.example.com"))
        return "DIRECT";

    // 5. Sites the gateway must not inspect (banking, health, pinned apps).
    if (shExpMatch(host, "*bank*.example") ||
        shExpMatch(host, "bank.example") ||
        dnsDomainIs(host, ".health.example") ||
        dnsDomainIs(host, ".hospital.example.org") ||
        shExpMatch(host, "*.pinned-app.example") ||
        shExpMatch(host, "api?.payments.example"))
        return NOINSPECT;

    // 6. Regional gateways by top-level domain.
    if (shExpMatch(host, "*.fr") || shExpMatch(host, "*.de") ||
        shExpMatch(host, "*.it") || shExpMatch(host, "*.es"))
        return "PROXY gateway-eu.vigie.example:3128; " + GATEWAY + "; DIRECT";
    if (shExpMatch(host, "*.jp") || shExpMatch(host, "*.sg") ||
        shExpMatch(host, "*.au"))
        return "PROXY gateway-ap.vigie.example:3128; " + GATEWAY + "; DIRECT";

    // 7. Everything else: the gateway, DIRECT if it is down.
    return GATEWAY + "; DIRECT";
}
