// verify.js: how a Node.js receiver (or a Node-RED function node) checks an
// edgehook webhook (Standard Webhooks). Run by bridge/webhook's snippet test:
// reads {"secret","headers","body"} on stdin and prints "valid" or "invalid".
const crypto = require("crypto");

// snippet start
// verify checks the webhook-* headers against the raw request body (a Buffer).
function verify(secret, headers, body) {
  const key = secret.startsWith("whsec_") ? Buffer.from(secret.slice(6), "base64") : Buffer.from(secret);
  const id = headers["webhook-id"] || "", ts = headers["webhook-timestamp"] || "";
  if (!/^\d+$/.test(ts) || Math.abs(Date.now() / 1000 - Number(ts)) > 300) return false;
  const mac = crypto.createHmac("sha256", key).update(`${id}.${ts}.`).update(body).digest("base64");
  const want = Buffer.from("v1," + mac);
  return (headers["webhook-signature"] || "").split(" ").some((sig) => {
    const got = Buffer.from(sig);
    return got.length === want.length && crypto.timingSafeEqual(got, want);
  });
}
// snippet end

let input = "";
process.stdin.on("data", (c) => (input += c));
process.stdin.on("end", () => {
  const data = JSON.parse(input);
  console.log(verify(data.secret, data.headers, Buffer.from(data.body, "base64")) ? "valid" : "invalid");
});
