"""Choosing the SpiNNaker machine for one run, without touching the user's own config.

sPyNNaker reads its settings from ``.spynnaker.cfg`` files only. This module
checks the machine options, writes a run-private config, makes sPyNNaker read
*that* file and no other (:func:`private_config`), and fails fast when a board
or spalloc server does not answer (:func:`check_machine_reachable`). How
sPyNNaker finds its config and why each setting is there:
``docs/design/spinnaker-config.md``. Nothing here imports sPyNNaker.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import socket
import struct
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from ...errors import RuntimeFailure, UsageError

__all__ = [
    "CONFIG_NAME",
    "MACHINE_KEYS",
    "VIRTUAL_BOARD_VERSIONS",
    "check_machine_reachable",
    "check_reachable",
    "describe_machine",
    "machine_options",
    "private_config",
    "scp_version_request",
    "validate_host",
    "validate_spalloc_url",
    "write_spynnaker_config",
]

CONFIG_NAME = ".spynnaker.cfg"
#: virtual board versions sPyNNaker knows: 3 = 4-chip SpiNN-3, 5 = 48-chip SpiNN-5
VIRTUAL_BOARD_VERSIONS = {3: "4-chip SpiNN-3 board", 5: "48-chip SpiNN-5 board"}
#: UDP port SCAMP answers SCP on (``spinnman.constants.SCP_SCAMP_PORT``)
SCP_SCAMP_PORT = 17893
#: default TCP port of an old-style (spalloc v1) server (``[Machine] spalloc_port``)
SPALLOC_V1_PORT = 22244

#: the keys of a ``machine`` dict (:func:`machine_options`)
MACHINE_KEYS = ("virtual_board", "host", "spalloc_server", "n_boards", "reachable_timeout_s")

_ENV_VARS = ("XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "HOME")
_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


# -- validation ---------------------------------------------------------------
def _is_hostname(name: str) -> bool:
    if not name or len(name) > 253:
        return False
    labels = name.rstrip(".").split(".")
    # an all-numeric dotted name is an (invalid) IPv4 address, not a host name
    if all(label.isdigit() for label in labels):
        return False
    return all(_HOSTNAME_LABEL.match(label) for label in labels)


def validate_host(host: str) -> str:
    """An IPv4 address or DNS name of a SpiNNaker board; ``UsageError`` otherwise.

    spinnman only talks IPv4 (UDP/SCP), so IPv6 addresses are refused too.
    """
    if not isinstance(host, str) or not host.strip():
        raise UsageError(f"SpiNNaker host must be an IPv4 address, got {host!r}")
    host = host.strip()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if _is_hostname(host):
            return host
        raise UsageError(
            f"SpiNNaker host {host!r} is not a valid IPv4 address or host name") from None
    if address.version != 4:
        raise UsageError(f"SpiNNaker host {host!r}: only IPv4 is supported by spinnman")
    return host


def validate_spalloc_url(url: str) -> str:
    """``http(s)://[user:pass@]host[:port][/path]`` (spalloc v2) or ``host[:port]`` (v1)."""
    if not isinstance(url, str) or not url.strip() or any(c.isspace() for c in url.strip()):
        raise UsageError(f"spalloc server must be a URL, got {url!r}")
    url = url.strip()
    parts = urlsplit(url if "://" in url else f"spalloc://{url}")
    if parts.scheme not in ("http", "https", "spalloc"):
        raise UsageError(f"spalloc server {url!r}: scheme must be http or https")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError for a bad port
    except ValueError as err:
        raise UsageError(f"spalloc server {url!r}: {err}") from None
    if not host:
        raise UsageError(f"spalloc server {url!r} has no host name")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not _is_hostname(host):
            raise UsageError(f"spalloc server {url!r}: {host!r} is not a valid host") from None
    return url


def _spalloc_endpoint(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"spalloc://{url}")
    default = {"http": 80, "https": 443}.get(parts.scheme, SPALLOC_V1_PORT)
    return parts.hostname or "", parts.port or default


def _cfg_path(path: Path) -> str:
    text = str(Path(path).expanduser().resolve())
    if "\n" in text or "\r" in text:
        raise UsageError(f"path {text!r} cannot go into a config file (line break)")
    return text


# -- machine options -----------------------------------------------------------
def machine_options(machine: dict) -> dict:
    """The checked ``machine`` dict (``None`` values dropped); ``UsageError`` otherwise.

    One of ``virtual_board`` (3 or 5), ``host`` or ``spalloc_server``, optionally with
    ``n_boards`` (virtual boards and spalloc) and ``reachable_timeout_s``.
    """
    if not isinstance(machine, dict):
        raise UsageError(f"machine must be a dict, got {type(machine).__name__}")
    unknown = sorted(set(machine) - set(MACHINE_KEYS))
    if unknown:
        raise UsageError(f"unknown machine option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(MACHINE_KEYS)}")
    options = {k: v for k, v in machine.items() if v is not None}
    n_boards = options.get("n_boards")
    if n_boards is not None and (isinstance(n_boards, bool) or not isinstance(n_boards, int)
                                 or n_boards < 1):
        raise UsageError(f"machine n_boards must be an integer >= 1, got {n_boards!r}")
    if n_boards is not None and "host" in options:
        raise UsageError("machine n_boards applies to virtual boards and spalloc only")
    return options


def describe_machine(options: dict) -> str:
    """``virtual SpiNN-5 x1``, ``board <host>`` or ``spalloc <url>`` for checked ``options``."""
    if "virtual_board" in options:
        boards = options.get("n_boards", 1)
        return f"virtual SpiNN-{options['virtual_board']} x{boards}"
    if "host" in options:
        return f"board {options['host']}"
    if "spalloc_server" in options:
        return f"spalloc {options['spalloc_server']}"
    return "virtual SpiNN-5 x1"


# -- the config file ------------------------------------------------------------
def write_spynnaker_config(config_dir: Path, *, virtual_board: int | None = None,
                           host: str | None = None, spalloc_server: str | None = None,
                           reports_dir: Path | None = None,
                           log_level: str = "warning") -> Path:
    """Write ``<config_dir>/.spynnaker.cfg`` for exactly one machine choice.

    * ``virtual_board=3`` -> 4-chip virtual SpiNN-3 board, ``=5`` -> 48-chip SpiNN-5;
      placement, routing and data specs run, nothing is executed (recorded data
      comes back empty, no plasticity).
    * ``host="10.11.192.1"`` -> a physical SpiNN-5 board (``machine_name``).
    * ``spalloc_server="https://server/spalloc/"`` -> boards from spalloc.

    ``reports_dir`` (default ``config_dir``) replaces the current directory as
    the place where sPyNNaker creates its ``reports/<timestamp>/run_<n>/`` tree
    (``[Reports] default_report_file_path``; sPyNNaker always adds the
    ``reports`` level itself). All optional reports are off (``[Mode] mode =
    Production``, which also maps faster).
    ``log_level`` is sPyNNaker's ``[Logging] default``; sPyNNaker passes it to
    ``logging.basicConfig``, which does nothing if the application configured
    logging first. The file is written with mode 0600 (a spalloc URL may carry
    a password).
    """
    chosen = [name for name, value in (("virtual_board", virtual_board), ("host", host),
                                       ("spalloc_server", spalloc_server))
              if value is not None]
    if len(chosen) != 1:
        raise UsageError("choose exactly one SpiNNaker machine: virtual_board, host or "
                         f"spalloc_server (got {', '.join(chosen) or 'none'})")
    machine: list[str] = []
    if virtual_board is not None:
        if isinstance(virtual_board, bool) or virtual_board not in VIRTUAL_BOARD_VERSIONS:
            raise UsageError(f"virtual board must be 3 (4 chips) or 5 (48 chips), "
                             f"got {virtual_board!r}")
        machine += ["virtual_board = True", f"version = {int(virtual_board)}"]
    elif host is not None:
        machine += [f"machine_name = {validate_host(host)}", "version = 5"]
    else:
        machine += [f"spalloc_server = {validate_spalloc_url(spalloc_server)}", "version = 5"]

    config_dir = Path(config_dir)
    reports = _cfg_path(Path(reports_dir) if reports_dir is not None else config_dir)
    if str(log_level).lower() not in ("debug", "info", "warning", "error", "critical"):
        raise UsageError(f"log level must be debug, info, warning, error or critical, "
                         f"got {log_level!r}")
    text = "\n".join([
        "# Written by spinnconv.backends.spinnaker.machine.write_spynnaker_config; run-private.",
        "[Machine]", *machine, "",
        "[Reports]",
        "# sPyNNaker adds reports/<timestamp>/run_<n>/ below this folder",
        f"default_report_file_path = {reports}",
        "# only logged (algorithm timings always go to the provenance database)",
        "display_algorithm_timings = False",
        "",
        "[Logging]",
        f"default = {str(log_level).lower()}",
        "",
        "[Mode]",
        "# Production: every report/keep-file option defaulting to Info or Debug is off",
        "mode = Production",
        "",
    ])
    config_dir.mkdir(parents=True, exist_ok=True)
    Path(reports).mkdir(parents=True, exist_ok=True)
    path = config_dir / CONFIG_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(text)
    return path


@contextlib.contextmanager
def private_config(config_dir: Path) -> Iterator[Path]:
    """Make sPyNNaker read ``<config_dir>/.spynnaker.cfg`` and no user/site config.

    Sets ``XDG_CONFIG_HOME=<config_dir>``, ``HOME=<config_dir>/home`` and
    ``XDG_CONFIG_DIRS=<config_dir>/site`` (both empty directories) and restores
    the three variables afterwards. Wrap ``sim.setup()`` in it: that is when the
    config is read. Yields the config file path.
    """
    config_dir = Path(config_dir).resolve()
    cfg = config_dir / CONFIG_NAME
    if not cfg.is_file():
        raise UsageError(f"no {CONFIG_NAME} in {config_dir}; call write_spynnaker_config first")
    home, site = config_dir / "home", config_dir / "site"
    for folder in (home, site):
        folder.mkdir(exist_ok=True)
        stray = folder / CONFIG_NAME
        if stray.exists():  # e.g. the template sPyNNaker writes when it finds no config
            stray.unlink()
    if Path(os.curdir, "spynnaker.cfg").is_file():
        warnings.warn(f"{Path.cwd() / 'spynnaker.cfg'} will be read by sPyNNaker on top of "
                      f"{cfg} (script-local configs cannot be switched off)", stacklevel=3)
    saved = {name: os.environ.get(name) for name in _ENV_VARS}
    os.environ["XDG_CONFIG_HOME"] = str(config_dir)
    os.environ["XDG_CONFIG_DIRS"] = str(site)
    os.environ["HOME"] = str(home)
    try:
        yield cfg
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# -- fail fast before sPyNNaker starts --------------------------------------------
def scp_version_request(sequence: int = 0) -> bytes:
    """The UDP payload of an SCP ``CMD_VER`` to chip (0, 0), core 0.

    Same bytes as spinnman's ``SCAMPConnection.get_scp_data(GetVersion(0, 0, 0))``:
    2 pad bytes, SDP header (flags 0x87 = reply expected, tag 0xFF, dest port/cpu 0,
    src port 7/cpu 31 = 0xFF, dest y/x 0, src y/x 0), SCP cmd 0, sequence, 3 args.
    """
    return (b"\x00\x00" + struct.pack("<8B", 0x87, 0xFF, 0x00, 0xFF, 0, 0, 0, 0)
            + struct.pack("<HHIII", 0, sequence & 0xFFFF, 0, 0, 0))


def _resolve(host: str, timeout_s: float) -> str:
    """``gethostbyname`` with a deadline (a dead DNS server must not hang us)."""
    try:
        ipaddress.IPv4Address(host)
        return host
    except ValueError:
        pass
    result: dict[str, object] = {}

    def worker():
        try:
            result["ip"] = socket.gethostbyname(host)
        except OSError as err:
            result["error"] = err

    thread = threading.Thread(target=worker, name=f"resolve-{host}", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if "ip" in result:
        return str(result["ip"])
    reason = result.get("error") or f"no DNS answer within {timeout_s:g} s"
    raise OSError(f"cannot resolve host name {host!r}: {reason}")


def _arp_complete(ip: str) -> bool:
    """Whether Linux has a resolved ARP entry for ``ip`` (host on our LAN and alive)."""
    try:
        with open("/proc/net/arp", encoding="ascii") as table:
            next(table, None)
            for line in table:
                fields = line.split()
                if len(fields) >= 3 and fields[0] == ip and int(fields[2], 16) & 0x2:
                    return True
    except (OSError, ValueError):
        pass
    return False


def check_reachable(host: str | None = None, timeout_s: float = 3.0, *,
                    spalloc_server: str | None = None) -> str:
    """Fail fast (``RuntimeFailure``) unless the board / spalloc server answers.

    * board: send an SCP ``CMD_VER`` over UDP to ``host:17893`` and wait up to
      ``timeout_s`` for any reply (SCAMP answers even while busy). An ICMP
      "port unreachable" fails immediately. A board that is powered but not yet
      booted does not answer SCP; if the host then has a resolved ARP entry
      (same LAN) it is accepted, as sPyNNaker will boot it.
    * spalloc: a TCP connect to the server's port (80/443 for http(s) URLs,
      22244 for a bare host name) within ``timeout_s``.

    Returns a short description of how the target answered.
    """
    if (host is None) == (spalloc_server is None):
        raise UsageError("check_reachable needs exactly one of host or spalloc_server")
    timeout_s = float(timeout_s)
    if spalloc_server is not None:
        url = validate_spalloc_url(spalloc_server)
        server, port = _spalloc_endpoint(url)
        try:
            address = _resolve(server, timeout_s)
            with socket.create_connection((address, port), timeout=timeout_s):
                return f"spalloc server {server}:{port} accepts TCP connections"
        except OSError as err:
            raise RuntimeFailure(f"spalloc server at {server}:{port} not reachable "
                                 f"({err.__class__.__name__}: {err or 'timed out'})") from None

    host = validate_host(host)
    try:
        ip = _resolve(host, timeout_s)
    except OSError as err:
        raise RuntimeFailure(f"SpiNNaker board at {host} not reachable ({err})") from None
    sequence = int(time.monotonic() * 1000) & 0xFFFF
    deadline = time.monotonic() + timeout_s
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((ip, SCP_SCAMP_PORT))
            sock.send(scp_version_request(sequence))
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                sock.settimeout(remaining)
                reply = sock.recv(512)
                # 2 pad + 8 SDP header + return code + sequence
                if len(reply) >= 14:
                    return f"SCAMP on {ip}:{SCP_SCAMP_PORT} answered SCP"
    except TimeoutError:
        if _arp_complete(ip):
            return f"{ip} is on the local network (ARP) but SCAMP did not answer: not booted?"
        reason = f"no SCP reply on UDP {SCP_SCAMP_PORT} within {timeout_s:g} s"
    except ConnectionRefusedError:
        reason = (f"ICMP port unreachable for UDP {SCP_SCAMP_PORT}: "
                  "no SCAMP there (not a SpiNNaker board?)")
    except OSError as err:
        reason = f"{err.strerror or err}"
    raise RuntimeFailure(f"SpiNNaker board at {host} not reachable ({reason}); "
                         "check the IP address, cable and power")


def check_machine_reachable(host: str | None = None, spalloc_server: str | None = None,
                            timeout_s: float = 3.0) -> str | None:
    """:func:`check_reachable` for a board or spalloc server; nothing (``None``) for a
    virtual board (both ``None``)."""
    if host is not None:
        return check_reachable(host, timeout_s)
    if spalloc_server is not None:
        return check_reachable(spalloc_server=spalloc_server, timeout_s=timeout_s)
    return None
