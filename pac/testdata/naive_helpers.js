// PAC helper functions in plain JavaScript, written the way browsers' helper
// libraries work: a regular expression built on every shExpMatch call, DNS
// asked on every isInNet/dnsResolve call, dates computed with Date objects.
//
// Two uses, both in tests: the naive baseline of the benchmarks (one runtime
// behind a mutex, these helpers), and an oracle for the date and time
// functions, whose Go versions must agree with this JavaScript for any
// arguments and clock.
//
// dnsResolve(host) and myIpAddress() are provided by the Go side, uncached.

function isPlainHostName(host) {
    return host.indexOf(".") < 0 && host.indexOf(":") < 0;
}

function dnsDomainIs(host, domain) {
    var start = host.length - domain.length;
    return start >= 0 && host.substring(start) == domain;
}

function localHostOrDomainIs(host, hostdom) {
    if (host == hostdom) {
        return true;
    }
    return hostdom.lastIndexOf(host + ".", 0) == 0;
}

function dnsDomainLevels(host) {
    return host.split(".").length - 1;
}

function isResolvable(host) {
    return dnsResolve(host) != null;
}

function isValidIpAddress(text) {
    var m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(text);
    if (m == null) {
        return false;
    }
    for (var i = 1; i <= 4; i++) {
        if (Number(m[i]) > 255) {
            return false;
        }
    }
    return true;
}

function convert_addr(text) {
    var p = text.split(".");
    return ((p[0] & 0xff) << 24) | ((p[1] & 0xff) << 16) | ((p[2] & 0xff) << 8) | (p[3] & 0xff);
}

function isInNet(host, pattern, mask) {
    if (!isValidIpAddress(pattern) || !isValidIpAddress(mask)) {
        return false;
    }
    var addr = host;
    if (!isValidIpAddress(addr)) {
        addr = dnsResolve(addr);
        if (addr == null) {
            return false;
        }
    }
    var m = convert_addr(mask);
    return (convert_addr(addr) & m) == (convert_addr(pattern) & m);
}

function shExpMatch(text, pattern) {
    var source = pattern.replace(/\./g, "\\.").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp("^" + source + "$").test(text);
}

var WEEKDAY_INDEX = {SUN: 0, MON: 1, TUE: 2, WED: 3, THU: 4, FRI: 5, SAT: 6};
var MONTH_INDEX = {JAN: 0, FEB: 1, MAR: 2, APR: 3, MAY: 4, JUN: 5,
                   JUL: 6, AUG: 7, SEP: 8, OCT: 9, NOV: 10, DEC: 11};

function nameIndex(table, name) {
    return (name in table) ? table[name] : -1;
}

// Within [from, to], wrapping when from is after to.
function between(from, x, to) {
    if (from <= to) {
        return from <= x && x <= to;
    }
    return x >= from || x <= to;
}

// Moves the UTC fields of d into its local fields, one setter at a time.
function toGMTFields(d) {
    d.setFullYear(d.getUTCFullYear());
    d.setMonth(d.getUTCMonth());
    d.setDate(d.getUTCDate());
    d.setHours(d.getUTCHours());
    d.setMinutes(d.getUTCMinutes());
    d.setSeconds(d.getUTCSeconds());
    return d;
}

function weekdayRange() {
    var n = arguments.length;
    if (n < 1) {
        return false;
    }
    var now = new Date();
    var today = now.getDay();
    if (arguments[n - 1] == "GMT") {
        n--;
        today = now.getUTCDay();
    }
    var first = nameIndex(WEEKDAY_INDEX, arguments[0]);
    var last = (n == 2) ? nameIndex(WEEKDAY_INDEX, arguments[1]) : first;
    if (first == -1 || last == -1) {
        return false;
    }
    return between(first, today, last);
}

function dateRange() {
    var n = arguments.length;
    if (n < 1) {
        return false;
    }
    var now = new Date();
    var gmt = arguments[n - 1] == "GMT";
    if (gmt) {
        n--;
    }
    if (n == 1) {
        var v = parseInt(arguments[0]);
        if (isNaN(v)) {
            return (gmt ? now.getUTCMonth() : now.getMonth()) == nameIndex(MONTH_INDEX, arguments[0]);
        }
        if (v < 32) {
            return (gmt ? now.getUTCDate() : now.getDate()) == v;
        }
        return (gmt ? now.getUTCFullYear() : now.getFullYear()) == v;
    }
    var year = now.getFullYear();
    var from = new Date(year, 0, 1, 0, 0, 0);
    var to = new Date(year, 11, 31, 23, 59, 59);
    var half = n >> 1;
    var sameMonth = false;
    for (var i = 0; i < n; i++) {
        var d = (i < half) ? from : to;
        var v = parseInt(arguments[i]);
        if (isNaN(v)) {
            d.setMonth(nameIndex(MONTH_INDEX, arguments[i]));
        } else if (v < 32) {
            if (i < half) {
                sameMonth = (n <= 2);
            }
            d.setDate(v);
        } else {
            d.setFullYear(v);
        }
    }
    if (sameMonth) {
        from.setMonth(now.getMonth());
        to.setMonth(now.getMonth());
    }
    if (gmt) {
        toGMTFields(now);
    }
    return between(from, now, to);
}

function timeRange() {
    var n = arguments.length;
    if (n < 1) {
        return false;
    }
    var now = new Date();
    var gmt = arguments[n - 1] == "GMT";
    if (gmt) {
        n--;
    }
    var hour = gmt ? now.getUTCHours() : now.getHours();
    if (n == 1) {
        return hour == arguments[0];
    }
    if (n == 2) {
        return arguments[0] <= hour && hour <= arguments[1];
    }
    if (n != 4 && n != 6) {
        throw "timeRange: bad number of arguments";
    }
    var from = new Date(now.getTime());
    var to = new Date(now.getTime());
    var mid = n >> 1;
    if (n == 6) {
        from.setSeconds(arguments[2]);
        to.setSeconds(arguments[5]);
    }
    from.setHours(arguments[0]);
    from.setMinutes(arguments[1]);
    to.setHours(arguments[mid]);
    to.setMinutes(arguments[mid + 1]);
    if (n == 4) {
        to.setSeconds(59);
    }
    if (gmt) {
        toGMTFields(now);
    }
    return between(from, now, to);
}
