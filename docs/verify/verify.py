# verify.py: how a Python receiver checks an edgehook webhook (Standard Webhooks).
# Run by bridge/webhook's snippet test: reads {"secret","headers","body"} on
# stdin and prints "valid" or "invalid".
import base64, hashlib, hmac, json, sys, time

# snippet start
def verify(secret: str, headers: dict, body: bytes) -> bool:
    """Check the webhook-* headers against the raw request body."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    msg_id, ts = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    if not ts.isdigit() or abs(time.time() - int(ts)) > 300:
        return False  # missing, malformed, stale or future timestamp
    mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
    want = "v1," + base64.b64encode(mac).decode()
    return any(hmac.compare_digest(sig, want) for sig in headers.get("webhook-signature", "").split())
# snippet end

if __name__ == "__main__":
    data = json.load(sys.stdin)
    ok = verify(data["secret"], data["headers"], base64.b64decode(data["body"]))
    print("valid" if ok else "invalid")
