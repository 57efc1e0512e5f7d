"""`ppdoctor pp decode` / `ppdoctor pp encode`, driven through ppdoctor.cli.main."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from ppdoctor.cli import main
from ppdoctor.proxyproto import local_v2, parse, proxy_v1, proxy_v2

V2 = proxy_v2(("203.0.113.7", 51234), ("10.0.0.5", 443), crc32c=True, vpce_id="vpce-0123456789abcdef0")
JSON_KEYS = {
    "version", "command", "family", "protocol", "src", "dst", "tlvs", "crc32c", "aws_vpce_id",
    "header_length", "trailing_bytes",
}  # fmt: skip


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_decode_json(capsys) -> None:
    code, out, _ = run(capsys, "pp", "decode", "--json", V2.hex() + "474554")
    assert code == 0
    obj = json.loads(out)
    assert set(obj) == JSON_KEYS
    assert obj["version"] == 2 and obj["command"] == "PROXY"
    assert obj["family"] == "INET" and obj["protocol"] == "STREAM"
    assert obj["src"] == {"address": "203.0.113.7", "port": 51234}
    assert obj["dst"] == {"address": "10.0.0.5", "port": 443}
    assert obj["crc32c"] == "valid"
    assert obj["aws_vpce_id"] == "vpce-0123456789abcdef0"
    assert obj["header_length"] == len(V2) and obj["trailing_bytes"] == 3
    crc, aws = obj["tlvs"]
    assert crc["type"] == 3 and crc["name"] == "CRC32C" and len(crc["value"]) == 8
    assert aws["name"] == "AWS" and aws["value"] == "01" + b"vpce-0123456789abcdef0".hex()
    assert aws["aws"] == {"subtype": 1, "vpce_id": "vpce-0123456789abcdef0"}
    assert out.count("\n") == 1  # one object, one line


def test_decode_text_with_spaces_and_newlines(capsys) -> None:
    spaced = " ".join(V2.hex()[i : i + 4] for i in range(0, len(V2.hex()), 4))
    code, out, _ = run(capsys, "pp", "decode", *spaced.split(" ")[:3], "\n".join(spaced.split(" ")[3:]))
    assert code == 0
    assert "203.0.113.7:51234" in out and "10.0.0.5:443" in out and "vpce-0123456789abcdef0" in out
    assert "crc32c    valid" in out


def test_decode_stdin(capsys, monkeypatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(proxy_v1(("2001:db8::7", 1), ("::1", 80)).hex() + "\n"))
    code, out, _ = run(capsys, "pp", "decode", "--json", "-")
    assert code == 0
    obj = json.loads(out)
    assert obj["version"] == 1 and obj["src"] == {"address": "2001:db8::7", "port": 1}
    assert obj["tlvs"] == [] and obj["crc32c"] == "absent"


def test_decode_local_and_ssl(capsys) -> None:
    data = local_v2(tlvs=[(0x20, b"\x05\x00\x00\x00\x00" + b"\x21\x00\x07TLSv1.3")])
    code, out, _ = run(capsys, "pp", "decode", "--json", data.hex())
    obj = json.loads(out)
    assert code == 0 and obj["command"] == "LOCAL" and obj["src"] is None and obj["dst"] is None
    ssl = obj["tlvs"][0]["ssl"]
    assert ssl["client"] == 5 and ssl["verified"] and ssl["tlvs"][0]["value"] == "TLSv1.3"
    code, out, _ = run(capsys, "pp", "decode", data.hex())
    assert "LOCAL" in out and "TLSv1.3" in out


def test_decode_crc_mismatch_shows_the_header(capsys) -> None:
    code, out, _ = run(capsys, "pp", "decode", "--json", "0d0a0d0a000d0a515549540a20000007030004a9b8218f")
    assert code == 1
    assert json.loads(out)["crc32c"] == "invalid"


@pytest.mark.parametrize(
    "hex_text,kind",
    [
        ("0d0a0d0a000d0a515549540a2111000b010203040001010203050002", "length-too-short"),
        ("474554202f20485454502f312e310d0a", "bad-signature"),
        ("0d0a0d0a000d0a5155", "incomplete"),
        ("zz", "bad-input"),
        ("abc", "bad-input"),
    ],
)
def test_decode_errors(capsys, hex_text: str, kind: str) -> None:
    code, out, err = run(capsys, "pp", "decode", "--json", hex_text)
    assert code == 2
    error = json.loads(out)["error"]
    assert error["kind"] == kind and error["message"]
    if kind == "incomplete":
        assert error["needed"] == 7 and "7" in error["message"]
    code, out, err = run(capsys, "pp", "decode", hex_text)
    assert code == 2 and out == "" and "Traceback" not in err and err.startswith("ppdoctor pp decode:")


def test_encode_v2_full(capsys) -> None:
    code, out, _ = run(
        capsys, "pp", "encode", "--src", "203.0.113.7:51234", "--dst", "10.0.0.5:443", "--crc32c",
        "--vpce", "vpce-0abc", "--authority", "example.com", "--tlv", "0xE1=6869", "--tlv", "ALPN=6832",
    )  # fmt: skip
    assert code == 0
    parsed = parse(bytes.fromhex(out.strip()))
    h = parsed.header
    assert (str(h.src), str(h.dst), parsed.crc32c) == ("203.0.113.7:51234", "10.0.0.5:443", "valid")
    assert h.aws_vpce_id == "vpce-0abc" and h.authority == "example.com"
    assert [t.type for t in h.tlvs] == [0x03, 0xE1, 0x01, 0x02, 0xEA]


def test_encode_forms(capsys) -> None:
    assert run(capsys, "pp", "encode", "--src", "[2001:db8::7]:1", "--dst", "[::1]:80", "--v1")[1] == (
        b"PROXY TCP6 2001:db8::7 ::1 1 80\r\n".hex() + "\n"
    )
    assert run(capsys, "pp", "encode", "--v1")[1].strip() == b"PROXY UNKNOWN\r\n".hex()
    assert run(capsys, "pp", "encode", "--local", "--crc32c")[1].strip() == local_v2(crc32c=True).hex()
    out = run(capsys, "pp", "encode", "--src", "[2001:db8::7]:1", "--dst", "[::1]:80")[1]
    assert out.strip() == proxy_v2(("2001:db8::7", 1), ("::1", 80)).hex()


@pytest.mark.parametrize(
    "argv",
    [
        ["--src", "1.2.3.4", "--dst", "1.2.3.4:1"],
        ["--src", "1.2.3.4:70000", "--dst", "1.2.3.4:1"],
        ["--src", "2001:db8::1:80", "--dst", "1.2.3.4:1"],
        ["--src", "example.com:80", "--dst", "1.2.3.4:1"],
        ["--src", "1.2.3.4:1"],
        [],
        ["--src", "1.2.3.4:1", "--dst", "[::1]:1"],
        ["--v1", "--local"],
        ["--v1", "--src", "1.2.3.4:1", "--dst", "1.2.3.4:1", "--crc32c"],
        ["--src", "1.2.3.4:1", "--dst", "1.2.3.4:1", "--tlv", "nope"],
        ["--src", "1.2.3.4:1", "--dst", "1.2.3.4:1", "--tlv", "0x100=00"],
        ["--src", "1.2.3.4:1", "--dst", "1.2.3.4:1", "--tlv", "FOO=00"],
        ["--src", "1.2.3.4:1", "--dst", "1.2.3.4:1", "--tlv", "1=xyz"],
        ["--src", "1.2.3.4:1", "--dst", "1.2.3.4:1", "--vpce", "vpcé"],
    ],
)
def test_encode_bad_arguments(capsys, argv: list[str]) -> None:
    code, out, err = run(capsys, "pp", "encode", *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("ppdoctor pp encode:") and "Traceback" not in err


def test_pp_does_not_import_heavy_modules() -> None:
    code = f"""
import sys
from ppdoctor.cli import main
rc = main(["pp", "decode", "--json", "{V2.hex()}"])
assert rc == 0, rc
rc = main(["pp", "encode", "--src", "1.2.3.4:1", "--dst", "5.6.7.8:2", "--crc32c"])
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"textual", "boto3", "botocore", "kubernetes", "scapy"}})
print("HEAVY", heavy)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("HEAVY []"), out.stdout
