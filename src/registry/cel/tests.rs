//! The language, case by case: results and errors as the CEL spec's conformance suites state
//! them (literals, arithmetic and overflow, logic with error absorption, comparisons across
//! numeric types, macros, strings, lists, timestamps, durations, quantities, URLs, regexes).

use super::value::{equals, ErrKind, Value};
use super::{Program, PER_CALL_LIMIT};

fn run(src: &str) -> Result<Value, super::EvalError> {
    let p = Program::parse(src).unwrap_or_else(|e| panic!("{src}: {}", e.render(src)));
    let mut cost = 0;
    p.eval(vec![], PER_CALL_LIMIT, &mut cost)
}

/// `src` evaluates to the same value, of the same type, as `want`.
fn ok(src: &str, want: &str) {
    let got = run(src).unwrap_or_else(|e| panic!("{src}: unexpected error {e}"));
    let w = run(want).unwrap_or_else(|e| panic!("{want}: {e}"));
    assert!(
        equals(&got, &w) && got.type_name() == w.type_name(),
        "{src}: got {got:?}, want {w:?}"
    );
}

fn err(src: &str, want: &str) {
    match run(src) {
        Ok(v) => panic!("{src}: expected error {want:?}, got {v:?}"),
        Err(e) => assert!(e.message.contains(want), "{src}: error {e} lacks {want:?}"),
    }
}

#[test]
fn literals() {
    ok("1u", "uint(1)");
    ok("0x10", "16");
    ok("0x10u", "16u");
    ok("-9223372036854775808", "int('-9223372036854775808')");
    ok("1.5e2", "150.0");
    ok(".5", "0.5");
    ok(r#""a\tb""#, "'a' + '\\t' + 'b'");
    ok(r#"'\u00e9'"#, "'é'");
    ok(r#"'\x41\101'"#, "'AA'");
    ok(r#"r'a\nb'"#, r#"'a\\nb'"#);
    ok("'''a\nb'''", "'a\\nb'");
    ok(r#"b'\xff'"#, r#"b'\377'"#);
    ok("size(b'abc')", "3");
    ok("[1, 2, 3,][2]", "3");
    ok("{'a': 1, 'b': 2}['b']", "2");
    ok("null == null", "true");
    ok("type(1) == int", "true");
    assert!(Program::parse("9223372036854775808").is_err());
    assert!(Program::parse("'unterminated").is_err());
    assert!(Program::parse("1 +").is_err());
    assert!(Program::parse("a.?b").is_err());
}

#[test]
fn arithmetic_and_overflow() {
    ok("1 + 2 * 3 - 4 / 2 % 3", "5");
    ok("-(3 - 5)", "2");
    ok("7 / -2", "-3");
    ok("7 % -2", "1");
    ok("3u * 2u", "6u");
    ok("1.5 + 1.0", "2.5");
    ok("1.0 / 0.0 > 1e308", "true");
    err("9223372036854775807 + 1", "integer overflow");
    err("-9223372036854775808 - 1", "integer overflow");
    err("-(-9223372036854775808)", "integer overflow");
    err("-9223372036854775808 / -1", "integer overflow");
    err("4611686018427387904 * 2", "integer overflow");
    err("0u - 1u", "unsigned integer overflow");
    err("1 / 0", "division by zero");
    err("1 % 0", "modulus by zero");
    err("int(1e19)", "integer overflow");
    err("uint(-1)", "unsigned integer overflow");
    ok("int(-1.9)", "-1");
    ok("uint(2.7)", "2u");
    match run("1 + 1u") {
        Err(e) => assert_eq!(e.kind, ErrKind::Overload),
        Ok(v) => panic!("mixed int and uint added: {v:?}"),
    }
}

#[test]
fn logic_absorbs_errors() {
    ok("false && (1 / 0 == 1)", "false");
    ok("(1 / 0 == 1) && false", "false");
    ok("true || (1 / 0 == 1)", "true");
    ok("(1 / 0 == 1) || true", "true");
    err("(1 / 0 == 1) || false", "division by zero");
    err("true && (1 / 0 == 1)", "division by zero");
    ok("!false", "true");
    ok("true ? 1 : 1 / 0", "1");
    ok("false ? 1 / 0 : 2", "2");
    ok("[1, 2].exists(x, x == 2 || 1 / 0 == 1)", "true");
    ok("[0, -1].all(x, 1 / x > 0)", "false");
    err("[1, 0].all(x, 1 / x > 0)", "division by zero");
    ok("[0, 2].exists(x, 4 / x == 2)", "true");
}

#[test]
fn comparisons_across_numbers() {
    ok("1 == 1.0", "true");
    ok("1u == 1", "true");
    ok("1 < 1.5", "true");
    ok("-1 < 0u", "true");
    ok("2u > 1.5", "true");
    ok("1.0 / 0.0 == 1.0 / 0.0", "true");
    ok("0.0 / 0.0 == 0.0 / 0.0", "false");
    ok("0.0 / 0.0 < 1.0", "false");
    ok("'a' < 'b'", "true");
    ok("b'a' < b'b'", "true");
    ok("false < true", "true");
    ok("[1, 2] == [1, 2.0]", "true");
    ok("{'a': 1} == {'a': 1u}", "true");
    ok("1 == 'a'", "false");
    ok("[1] != [2]", "true");
    ok("2 in [1, 2]", "true");
    ok("'k' in {'k': 1}", "true");
    ok("{1: 'a'}[1u]", "'a'");
    err("{'a': 1}['b']", "no such key: b");
    err("[1][1]", "index out of bounds: 1");
    err("{'a': 1}.b", "no such key: b");
}

#[test]
fn macros() {
    ok("[1, 2, 3].all(x, x > 0)", "true");
    ok("[1, 2, 3].exists(x, x > 2)", "true");
    ok("[1, 2, 3].exists_one(x, x > 1)", "false");
    ok("[1, 2, 3].exists_one(x, x > 2)", "true");
    ok("[1, 2, 3].map(x, x * 2)", "[2, 4, 6]");
    ok("[1, 2, 3].map(x, x > 1, x * 10)", "[20, 30]");
    ok("[1, 2, 3].filter(x, x != 2)", "[1, 3]");
    ok("{'a': 1, 'b': 2}.all(k, k in ['a', 'b'])", "true");
    ok("{'a': 1, 'b': 2}.map(k, k)", "['a', 'b']");
    ok("[[1], [2, 3]].map(l, l.size())", "[1, 2]");
    ok("[1, 2].map(x, [3, 4].map(y, x * y))", "[[3, 4], [6, 8]]");
    ok("has({'a': 1}.a)", "true");
    ok("has({'a': 1}.b)", "false");
    ok("[].all(x, false)", "true");
}

#[test]
fn strings() {
    ok("'hello'.contains('ell')", "true");
    ok("'hello'.startsWith('he') && 'hello'.endsWith('lo')", "true");
    ok("size('héllo')", "5");
    ok("'héllo'.size()", "5");
    ok("'abc123'.matches('^[a-z]+[0-9]+$')", "true");
    ok("matches('abc', 'b')", "true");
    ok("'hello'.charAt(1)", "'e'");
    ok("'hello'.charAt(5)", "''");
    err("'hello'.charAt(6)", "index out of range: 6");
    ok("'hello mellow'.indexOf('ll')", "2");
    ok("'hello mellow'.indexOf('ll', 3)", "8");
    ok("'hello mellow'.lastIndexOf('ll')", "8");
    ok("'hello mellow'.lastIndexOf('ll', 7)", "2");
    ok("'héllo'.indexOf('l')", "2");
    ok("'TacoCat'.lowerAscii()", "'tacocat'");
    ok("'TacoCat'.upperAscii()", "'TACOCAT'");
    ok("'a-b-c'.replace('-', '+')", "'a+b+c'");
    ok("'a-b-c'.replace('-', '+', 1)", "'a+b-c'");
    ok("'a,b,c'.split(',')", "['a', 'b', 'c']");
    ok("'a,b,c'.split(',', 2)", "['a', 'b,c']");
    ok("'abc'.split('')", "['a', 'b', 'c']");
    ok("'tacocat'.substring(4)", "'cat'");
    ok("'tacocat'.substring(0, 4)", "'taco'");
    err("'tacocat'.substring(4, 2)", "invalid substring range");
    ok("'  x \\t'.trim()", "'x'");
    ok("['a', 'b'].join()", "'ab'");
    ok("['a', 'b'].join('-')", "'a-b'");
    ok("'abc 123 def 456'.find('[0-9]+')", "'123'");
    ok("'abc 123 def 456'.findAll('[0-9]+')", "['123', '456']");
    ok("'abc 123 def 456'.findAll('[0-9]+', 1)", "['123']");
    ok(
        "string(1) + string(1u) + string(1.5) + string(true)",
        "'111.5true'",
    );
    ok("string(b'ab')", "'ab'");
    ok("bytes('ab')", "b'ab'");
    ok("int('-42')", "-42");
    ok("double('2.5')", "2.5");
    ok("bool('true')", "true");
    err("int('x')", "type conversion error from 'string' to 'int'");
}

#[test]
fn lists() {
    ok("[1, 2, 3].isSorted()", "true");
    ok("['b', 'a'].isSorted()", "false");
    ok("[1, 2, 3].sum()", "6");
    ok("[1.5, 2.5].sum()", "4.0");
    ok("[].sum()", "0");
    ok("[3, 1, 2].min()", "1");
    ok("[3, 1, 2].max()", "3");
    err("[].min()", "empty list");
    ok("[1, 2, 1].indexOf(1)", "0");
    ok("[1, 2, 1].lastIndexOf(1)", "2");
    ok("[1, 2].indexOf(3)", "-1");
    ok("[1] + [2]", "[1, 2]");
    ok("size([1, 2])", "2");
    err("[9223372036854775807, 1].sum()", "integer overflow");
}

#[test]
fn timestamps_and_durations() {
    ok("timestamp('2024-03-05T10:20:30Z').getFullYear()", "2024");
    ok("timestamp('2024-03-05T10:20:30Z').getMonth()", "2");
    ok("timestamp('2024-03-05T10:20:30Z').getDate()", "5");
    ok("timestamp('2024-03-05T10:20:30Z').getDayOfMonth()", "4");
    ok("timestamp('2024-03-05T10:20:30Z').getDayOfWeek()", "2");
    ok("timestamp('2024-03-05T10:20:30Z').getDayOfYear()", "64");
    ok(
        "timestamp('2024-03-05T10:20:30.250Z').getMilliseconds()",
        "250",
    );
    ok("timestamp('2024-03-05T23:20:30Z').getHours('+02:00')", "1");
    ok(
        "timestamp('2024-03-05T10:20:30Z').getHours('Europe/Paris')",
        "11",
    );
    ok("duration('1h30m').getMinutes()", "90");
    ok("duration('1.5s').getMilliseconds()", "1500");
    ok("duration('-2m').getSeconds()", "-120");
    ok(
        "timestamp('2024-01-01T00:00:00Z') + duration('24h') == timestamp('2024-01-02T00:00:00Z')",
        "true",
    );
    ok(
        "timestamp('2024-01-02T00:00:00Z') - timestamp('2024-01-01T00:00:00Z')",
        "duration('24h')",
    );
    ok("duration('1m') < duration('61s')", "true");
    ok("string(duration('1m30s'))", "'90s'");
    ok(
        "string(timestamp('2024-01-01T00:00:00Z'))",
        "'2024-01-01T00:00:00Z'",
    );
    ok("int(timestamp('1970-01-01T00:01:00Z'))", "60");
    err(
        "timestamp('9999-12-30T21:00:00Z') + duration('2h')",
        "timestamp overflow",
    );
    err(
        "timestamp('0001-01-01T00:00:00Z') - duration('1s')",
        "timestamp overflow",
    );
    err(
        "duration('1x')",
        "type conversion error from 'string' to 'google.protobuf.Duration'",
    );
    err(
        "timestamp('yesterday')",
        "type conversion error from 'string' to 'google.protobuf.Timestamp'",
    );
}

#[test]
fn quantities() {
    ok("quantity('1Gi').isGreaterThan(quantity('1G'))", "true");
    ok("quantity('500m').isLessThan(quantity('1'))", "true");
    ok("quantity('1k').compareTo(quantity('1000'))", "0");
    ok("quantity('1Ki').asInteger()", "1024");
    ok("quantity('1.5').isInteger()", "false");
    ok("quantity('1.5').asApproximateFloat()", "1.5");
    ok("quantity('-3').sign()", "-1");
    ok(
        "quantity('1').add(quantity('500m')).asApproximateFloat()",
        "1.5",
    );
    ok("quantity('2').sub(1).asInteger()", "1");
    ok("quantity('100m').add(quantity('900m')).isInteger()", "true");
    ok("isQuantity('1Mi') && !isQuantity('1MB')", "true");
    err(
        "quantity('0.5').asInteger()",
        "cannot convert value to integer",
    );
    err("quantity('x')", "quantities must match");
}

#[test]
fn urls() {
    ok(
        "url('https://user@example.com:8443/a%20b?x=1&x=2&y').getScheme()",
        "'https'",
    );
    ok(
        "url('https://example.com:8443/p').getHost()",
        "'example.com:8443'",
    );
    ok(
        "url('https://example.com:8443/p').getHostname()",
        "'example.com'",
    );
    ok("url('https://[::1]:80/p').getHostname()", "'::1'");
    ok("url('https://example.com:8443/p').getPort()", "'8443'");
    ok(
        "url('https://example.com/a%20b').getEscapedPath()",
        "'/a%20b'",
    );
    ok(
        "url('https://e.com/?x=1&x=2&y').getQuery()",
        "{'x': ['1', '2'], 'y': ['']}",
    );
    ok("url('/just/a/path').getHost()", "''");
    ok(
        "isURL('https://example.com') && !isURL('not a url') && !isURL('example.com')",
        "true",
    );
    err("url('example')", "invalid URI for request");
}

#[test]
fn ips_and_cidrs() {
    ok(
        "isIP('10.0.0.1') && isIP('::1') && !isIP('10.0.0.300') && !isIP('::ffff:1.2.3.4')",
        "true",
    );
    ok(
        "ip.isCanonical('2001:db8::1') && !ip.isCanonical('2001:DB8::1')",
        "true",
    );
    ok("ip('10.1.2.3').family()", "4");
    ok("ip('fe80::1').isLinkLocalUnicast()", "true");
    ok("ip('224.0.0.5').isLinkLocalMulticast()", "true");
    ok(
        "ip('127.0.0.1').isLoopback() && ip('0.0.0.0').isUnspecified()",
        "true",
    );
    ok(
        "ip('8.8.8.8').isGlobalUnicast() && !ip('127.0.0.1').isGlobalUnicast()",
        "true",
    );
    ok("cidr('10.0.0.0/8').containsIP(ip('10.1.2.3'))", "true");
    ok("cidr('10.0.0.0/8').containsIP('11.0.0.1')", "false");
    ok("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16')", "true");
    ok(
        "cidr('10.1.0.0/16').containsCIDR(cidr('10.0.0.0/8'))",
        "false",
    );
    ok("string(cidr('10.1.2.3/8').masked())", "'10.0.0.0/8'");
    ok("cidr('10.1.2.3/8').ip() == ip('10.1.2.3')", "true");
    ok("cidr('2001:db8::/32').prefixLength()", "32");
    ok(
        "isCIDR('10.0.0.0/8') && !isCIDR('10.0.0.0/33') && !isCIDR('10.0.0.0')",
        "true",
    );
    err("ip('nope')", "parse error");
}

#[test]
fn cost_limit_stops_runaway_expressions() {
    // Ten nested loops over ten elements: 10^10 steps would never finish.
    let mut src = "true".to_string();
    for i in 0..10 {
        src = format!("[0, 1, 2, 3, 4, 5, 6, 7, 8, 9].all(v{i}, {src})");
    }
    let started = std::time::Instant::now();
    let e = run(&src).expect_err("runaway expression finished");
    assert_eq!(e.kind, ErrKind::Cost, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // Strings doubling each step are charged by size before they are built.
    let mut s = "'xxxxxxxxxxxxxxxx'".to_string();
    for _ in 0..40 {
        s = format!("[{s}].map(v, v + v)[0]");
    }
    assert_eq!(run(&s).expect_err("huge string built").kind, ErrKind::Cost);
}

#[test]
fn parser_depth_is_bounded() {
    let deep = format!("{}1{}", "(".repeat(5000), ")".repeat(5000));
    let e = Program::parse(&deep).expect_err("deep nesting parsed");
    assert!(e.message.contains("recursion limit"), "{}", e.message);
    // Long operator and selection chains make tall trees without any nesting.
    let chain = vec!["1"; 100_000].join(" + ");
    let e = Program::parse(&chain).expect_err("tall tree parsed");
    assert!(e.message.contains("recursion limit"), "{}", e.message);
    let select = format!("{{'a': 1}}{}", ".a".repeat(100_000));
    assert!(Program::parse(&select).is_err());
    let ok_chain = vec!["1"; 150].join(" + ");
    assert!(Program::parse(&ok_chain).is_ok());
    let e = Program::parse("1 + ").expect_err("bad syntax parsed");
    assert_eq!(
        e.render("1 + "),
        "ERROR: <input>:1:5: Syntax error: mismatched input <EOF> expecting expression\n | 1 + \n | ....^"
    );
}
