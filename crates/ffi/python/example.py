"""libshipshape from Python with ctypes: a key, backups to it and to a passphrase, a
verify, the list, a rate limit.

    python3 example.py /path/to/libshipshape.so WORKDIR
"""
import ctypes
import json
import os
import sys

lib = ctypes.CDLL(sys.argv[1])
lib.shipshape_version.restype = ctypes.c_char_p
lib.shipshape_last_error.restype = ctypes.c_char_p
lib.shipshape_string_free.argtypes = [ctypes.c_void_p]
lib.shipshape_ratelimiter_free.argtypes = [ctypes.c_void_p]


def call(fn, *args):
    """Calls fn(*args, &out); returns (code, out as str), freeing out."""
    out = ctypes.c_void_p()
    code = fn(*args, ctypes.byref(out))
    if code < 0:
        raise RuntimeError(lib.shipshape_last_error().decode())
    text = None
    if out.value:
        text = ctypes.string_at(out.value).decode()
        lib.shipshape_string_free(out)
    return code, text


work = sys.argv[2]
os.makedirs(f"{work}/data", exist_ok=True)
with open(f"{work}/data/notes.txt", "w") as f:
    f.write("hello from Python\n")

print("libshipshape", lib.shipshape_version().decode())
# Every call but this one refuses a location with no repository.
if lib.shipshape_init(f"{work}/repo".encode()) < 0:
    raise RuntimeError(lib.shipshape_last_error().decode())
_, recipient = call(lib.shipshape_keygen, f"{work}/identity.txt".encode())
options = json.dumps({"recipients": [recipient], "name": "py"}).encode()
_, manifest = call(lib.shipshape_backup_path, f"{work}/repo".encode(), f"{work}/data".encode(), options)
print("backed up", json.loads(manifest)["id"])

# A passphrase instead of a key: named by a variable (or a file), never
# written into the options themselves.
os.environ["SHIPSHAPE_EXAMPLE_PASSPHRASE"] = "correct horse battery staple"
by_env = json.dumps({"passphrase_env": "SHIPSHAPE_EXAMPLE_PASSPHRASE", "name": "py-pass"}).encode()
call(lib.shipshape_backup_path, f"{work}/repo".encode(), f"{work}/data".encode(), by_env)
_, report = call(lib.shipshape_verify, f"{work}/repo".encode(), b"latest:py-pass", None,
                 json.dumps({"passphrase_env": "SHIPSHAPE_EXAMPLE_PASSPHRASE"}).encode())
print("verified the passphrase backup:", json.loads(report)["raw"], "bytes of tar")
try:
    call(lib.shipshape_verify, f"{work}/repo".encode(), b"latest:py-pass", None, None)
except RuntimeError as e:
    print("error:", e)

_, listing = call(lib.shipshape_list, f"{work}/repo".encode())
print(len(json.loads(listing)["backups"]), "backup(s)")

limiter = ctypes.c_void_p()
if lib.shipshape_ratelimiter_new(b'{"limit": 2, "window": "1m"}', ctypes.byref(limiter)) != 0:
    raise RuntimeError(lib.shipshape_last_error().decode())
allowed = [lib.shipshape_ratelimiter_check(limiter, b"192.0.2.1", None) for _ in range(3)]
lib.shipshape_ratelimiter_free(limiter)
print("rate limit decisions:", allowed)  # [1, 1, 0]

try:
    call(lib.shipshape_list, None)
except RuntimeError as e:
    print("error:", e)
