"""Convert ip-location-db ASN CSV files into one MaxMind DB file shaped like
GeoLite2-ASN. `cargo xtask setup` runs it (xtask/src/geoip/mod.rs):

    python3 asn_csv_to_mmdb.py OUT.mmdb SOURCE CSV...

Each CSV row is `range_start,range_end,asn,organisation` (IPv4 or IPv6). The
output is an IPv6 tree with IPv4 at ::/96, records
`{"autonomous_system_number": uint32, "autonomous_system_organization": str}`.
SOURCE (`@ip-location-db/asn@2.3.YYYYMMDDHH`) goes into the description, and
its date into build_epoch, so the same input gives the same bytes. Writes
OUT.tmp and renames it to OUT, so a running agentmon never reads half a file.
Prints the number of ranges. Needs the PyPI packages mmdb-writer and netaddr.
"""

import csv
import datetime
import os
import sys

import netaddr
from mmdb_writer import MMDBWriter, MmdbU32


def epoch_of(source):
    stamp = source.rsplit(".", 1)[-1]
    try:
        when = datetime.datetime.strptime(stamp, "%Y%m%d%H")
    except ValueError:
        return 0
    return int(when.replace(tzinfo=datetime.timezone.utc).timestamp())


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    out, source, csvs = sys.argv[1], sys.argv[2], sys.argv[3:]
    db = MMDBWriter(
        ip_version=6,
        ipv4_compatible=True,
        database_type="ip-location-db-ASN",
        languages=["en"],
        description={"en": f"ASN data from {source} (CC BY 4.0), converted by agentmon"},
    )
    meta = db._build_meta
    db._build_meta = lambda: {**meta(), "build_epoch": epoch_of(source)}
    ranges = 0
    for path in csvs:
        with open(path, newline="", encoding="utf-8") as f:
            for start, end, asn, org in csv.reader(f):
                record = {"autonomous_system_number": MmdbU32(int(asn))}
                if org:
                    record["autonomous_system_organization"] = org
                db.insert_network(netaddr.IPSet(netaddr.IPRange(start, end)), record)
                ranges += 1
    tmp = out + ".tmp"
    db.to_db_file(tmp)
    os.replace(tmp, out)
    print(ranges)


if __name__ == "__main__":
    main()
