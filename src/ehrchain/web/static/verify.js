// Checks a transaction's inclusion proof in the browser, with Web Crypto SHA-256.
// Nothing here trusts the node: every hash is recomputed from the raw bytes on the page.
"use strict";
(function () {
  const el = document.getElementById("proof-data");
  if (!el) return;
  const data = JSON.parse(el.textContent);
  const list = document.getElementById("checks");
  const verdict = document.getElementById("verdict");
  document.getElementById("proof-view").textContent = JSON.stringify(data, null, 2);

  const fromHex = (h) => new Uint8Array((h.match(/../g) || []).map((b) => parseInt(b, 16)));
  const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const sha256 = async (...parts) =>
    new Uint8Array(await crypto.subtle.digest("SHA-256", concat(...parts)));
  const same = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  // Minimal CBOR reader (RFC 8949 major types 0-5 and simple values), keeping byte offsets.
  function read(buf, pos) {
    const ib = buf[pos];
    const major = ib >> 5;
    const info = ib & 31;
    let len = info;
    let at = pos + 1;
    if (info === 24) { len = buf[at]; at += 1; }
    else if (info === 25) { len = (buf[at] << 8) | buf[at + 1]; at += 2; }
    else if (info === 26) { len = ((buf[at] << 24) >>> 0) + ((buf[at + 1] << 16) | (buf[at + 2] << 8) | buf[at + 3]); at += 4; }
    else if (info === 27) {
      let v = 0n;
      for (let i = 0; i < 8; i++) v = (v << 8n) | BigInt(buf[at + i]);
      len = Number(v); at += 8;
    } else if (info > 27) throw new Error("unsupported CBOR item");
    if (major === 0) return { value: len, start: pos, end: at };
    if (major === 1) return { value: -1 - len, start: pos, end: at };
    if (major === 2) return { value: buf.slice(at, at + len), start: pos, end: at + len };
    if (major === 3) return { value: new TextDecoder().decode(buf.slice(at, at + len)), start: pos, end: at + len };
    if (major === 4 || major === 5) {
      const items = [];
      for (let i = 0; i < (major === 5 ? 2 * len : len); i++) {
        const item = read(buf, at);
        items.push(item);
        at = item.end;
      }
      return { value: items, start: pos, end: at };
    }
    if (major === 7) return { value: info === 21 ? true : info === 20 ? false : null, start: pos, end: at };
    throw new Error("unsupported CBOR major type " + major);
  }

  function step(ok, text) {
    const li = document.createElement("li");
    li.className = ok === null ? "skip" : ok ? "pass" : "fail";
    li.textContent = (ok === null ? "– " : ok ? "✓ " : "✗ ") + text;
    list.appendChild(li);
    return ok !== false;
  }

  async function rootFromPath(leaf, index, size, path) {
    if (index >= size) return null;
    let fn = index, sn = size - 1, r = leaf;
    for (const p of path) {
      if (sn === 0) return null;
      if ((fn & 1) === 1 || fn === sn) {
        r = await sha256(Uint8Array.of(1), p, r);
        if ((fn & 1) === 0) {
          while ((fn & 1) === 0 && fn !== 0) { fn >>= 1; sn >>= 1; }
        }
      } else {
        r = await sha256(Uint8Array.of(1), r, p);
      }
      fn >>= 1; sn >>= 1;
    }
    return sn === 0 ? r : null;
  }

  // The wire form is either [body, signature] with body = 0x01 ‖ CBOR of the six fields
  // (signed as domain ‖ 0x00 ‖ body), or the older flat array of seven fields
  // (signed as 0x01 ‖ CBOR [domain, six fields]).
  function parseTx(tx) {
    const outer = read(tx, 1).value;
    if (outer.length === 2 && outer[0].value instanceof Uint8Array) {
      const body = outer[0].value;
      const fields = read(body, 1).value;
      const domain = new TextEncoder().encode("ehrchain/tx/v1");
      return { fields, signature: outer[1].value, signed: concat(domain, Uint8Array.of(0), body) };
    }
    const domain = new TextEncoder().encode("ehrchain/tx/v1");
    const signed = concat(Uint8Array.of(1, 0x87, 0x60 | domain.length), domain, tx.slice(outer[0].start, outer[5].end));
    return { fields: outer.slice(0, 6), signature: outer[6].value, signed };
  }

  async function signatureCheck(parsed) {
    try {
      const key = await crypto.subtle.importKey("raw", parsed.fields[5].value, { name: "Ed25519" }, false, ["verify"]);
      return await crypto.subtle.verify({ name: "Ed25519" }, key, parsed.signature, parsed.signed);
    } catch (e) {
      return null;
    }
  }

  async function run() {
    let ok = true;
    const tx = fromHex(data.tx_bytes);
    const proof = data.proof;
    const header = fromHex(data.header_bytes);
    ok = step(toHex(await sha256(tx)) === data.tx_id, "the transaction bytes hash to its id " + data.tx_id.slice(0, 16) + "…") && ok;
    const parsed = parseTx(tx);
    const f = parsed.fields;
    step(true, "decoded: " + f[0].value + " by " + f[2].value + ", nonce " + f[3].value);
    const sig = await signatureCheck(parsed);
    if (sig === null) step(null, "signature: this browser has no Ed25519 in Web Crypto; skipped");
    else ok = step(sig, "the sender's Ed25519 signature over the transaction is valid") && ok;
    const leaf = await sha256(Uint8Array.of(0), tx);
    step(true, "leaf hash SHA-256(0x00 ‖ tx) = " + toHex(leaf).slice(0, 16) + "…");
    const root = await rootFromPath(leaf, proof.leaf_index, proof.tree_size, proof.hashes.map(fromHex));
    ok = step(root !== null && toHex(root) === proof.root,
      "the " + proof.hashes.length + " proof hashes lead from leaf " + proof.leaf_index + " of " + proof.tree_size + " to root " + proof.root.slice(0, 16) + "…") && ok;
    const fields = read(header, 1).value;
    const txRoot = fields[7].value;
    ok = step(header[0] === 1 && root !== null && same(root, txRoot), "the block header's tx_root is that same root") && ok;
    ok = step(fields[5].value === data.height && fields[4].value === proof.tree_size,
      "the header is block " + fields[5].value + " with " + fields[4].value + " transactions") && ok;
    const domain = new TextEncoder().encode(data.header_domain);
    const blockHash = await sha256(domain, Uint8Array.of(0), header);
    ok = step(toHex(blockHash) === data.block_hash, "the header hashes to block hash " + data.block_hash) && ok;
    verdict.textContent = ok ? "Verified: this event is in the chain." : "NOT verified: the data does not check out.";
    verdict.className = "verdict " + (ok ? "pass" : "fail");
    verdict.dataset.result = ok ? "pass" : "fail";
  }

  run().catch((e) => {
    verdict.textContent = "NOT verified: " + e.message;
    verdict.className = "verdict fail";
    verdict.dataset.result = "fail";
  });
})();
