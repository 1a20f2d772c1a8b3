#!/usr/bin/env python3
"""Write small GeoIP databases (MaxMind DB format) for agentmon's tests.

    python3 tests/geoip/make_test_mmdb.py --out DIR \
        --net 203.0.113.0/24=US:64500:Example-Net-US \
        --net 198.51.100.0/24=DE:64501:Beispiel-DE \
        --net 2001:db8::/32=JP:64502:Rei-JP \
        [--spec nets.json] [--combined] [--epoch SECONDS]

Each `--net` is `CIDR=COUNTRY:ASN:ORG`; any part may be empty
(`192.0.2.0/24=FR` has no ASN, `192.0.2.0/24=:64503:Org` no country). ORG is
everything after the second colon, so it may itself contain colons.
`--spec FILE` reads the same from JSON:
`[{"net": "203.0.113.0/24", "country": "US", "asn": 64500, "org": "..."}]`
(JSON can carry strings a shell cannot, e.g. control characters).

Writes, in DIR:
- `country.mmdb`: shaped like GeoLite2-Country, `{"country": {"iso_code": "US"}}`;
- `asn.mmdb`: shaped like GeoLite2-ASN, `{"autonomous_system_number": 64500,
  "autonomous_system_organization": "..."}` (the number as uint32);
- with `--combined`, `combined.mmdb`: one file with both, in the flat shape of
  the ip-location-db files, `{"country_code": "US", "autonomous_system_number":
  ..., "autonomous_system_organization": ...}`.

All three are IPv6 trees with IPv4 stored at ::/96 (ipv4_compatible), which
is how readers (maxminddb for Rust included) look up IPv4 addresses in an IPv6
database. `--epoch` (default: $SOURCE_DATE_EPOCH, else 1700000000) fixes the
build time so the same input gives the same bytes.

Needs the PyPI packages `mmdb-writer` and `netaddr` (`cargo xtask setup`
installs them). monitor/src/testdata/geoip/ holds files made by:

    python3 tests/geoip/make_test_mmdb.py --out monitor/src/testdata/geoip \
        --combined --spec tests/geoip/unit_nets.json
"""

import argparse
import json
import os
import sys

try:
    import netaddr
    from mmdb_writer import MMDBWriter, MmdbU32
except ImportError as err:  # pragma: no cover - depends on the machine
    sys.exit(
        f"make_test_mmdb: {err}; install the packages: "
        "python3 -m pip install mmdb-writer netaddr (or run `cargo xtask setup`)"
    )


def parse_net(text):
    """`CIDR=CC:ASN:ORG` -> dict."""
    net, sep, rest = text.partition("=")
    if not sep:
        raise ValueError(f"--net {text!r}: expected CIDR=COUNTRY:ASN:ORG")
    country, _, rest = rest.partition(":")
    asn, _, org = rest.partition(":")
    return {
        "net": net,
        "country": country or None,
        "asn": int(asn) if asn else None,
        "org": org or None,
    }


def check(entry):
    net = netaddr.IPNetwork(entry["net"])  # raises on a bad CIDR
    country = entry.get("country")
    if country is not None and not (isinstance(country, str) and country):
        raise ValueError(f"{entry['net']}: country must be a non-empty string")
    asn = entry.get("asn")
    if asn is not None and not (isinstance(asn, int) and 0 <= asn < 2**32):
        raise ValueError(f"{entry['net']}: asn must be an integer in 0..2^32")
    return net


def writer(description, database_type):
    return MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type=database_type,
        languages=["en"],
        description={"en": description},
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory to write into")
    ap.add_argument("--net", action="append", default=[], help="CIDR=COUNTRY:ASN:ORG")
    ap.add_argument("--spec", help="JSON file: a list of {net, country, asn, org}")
    ap.add_argument("--combined", action="store_true", help="also write combined.mmdb")
    ap.add_argument("--epoch", type=int, help="build_epoch to record")
    args = ap.parse_args()

    entries = [parse_net(n) for n in args.net]
    if args.spec:
        with open(args.spec, encoding="utf-8") as f:
            entries += json.load(f)
    if not entries:
        ap.error("give at least one --net or a --spec")

    epoch = args.epoch
    if epoch is None:
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "1700000000"))

    country_db = writer("agentmon test country database", "agentmon-Test-Country")
    asn_db = writer("agentmon test ASN database", "agentmon-Test-ASN")
    combined_db = writer("agentmon test country+ASN database", "agentmon-Test-Combined")
    for e in entries:
        net = netaddr.IPSet([check(e)])
        asn = {}
        if e.get("asn") is not None:
            asn["autonomous_system_number"] = MmdbU32(e["asn"])
        if e.get("org") is not None:
            asn["autonomous_system_organization"] = e["org"]
        if e.get("country"):
            country_db.insert_network(net, {"country": {"iso_code": e["country"]}})
        if asn:
            asn_db.insert_network(net, dict(asn))
        flat = dict(asn)
        if e.get("country"):
            flat["country_code"] = e["country"]
        if flat:
            combined_db.insert_network(net, flat)

    os.makedirs(args.out, exist_ok=True)
    outputs = [("country.mmdb", country_db), ("asn.mmdb", asn_db)]
    if args.combined:
        outputs.append(("combined.mmdb", combined_db))
    for name, db in outputs:
        # mmdb-writer stamps time.time(); a fixed epoch makes the bytes repeatable.
        meta = db._build_meta
        db._build_meta = lambda meta=meta: {**meta(), "build_epoch": epoch}
        # Write beside, then rename: a reader watching DIR never sees half a file.
        path = os.path.join(args.out, name)
        tmp = path + ".tmp"
        db.to_db_file(tmp)
        os.replace(tmp, path)
        print(f"make_test_mmdb: wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
