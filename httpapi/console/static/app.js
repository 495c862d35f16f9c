// RAP Fabric console: every change is a fetch() to the JSON API with the
// session's CSRF token; high-risk actions first ask for a fresh TOTP code and
// obtain a single-use step-up grant for exactly that request.
"use strict";
(function () {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  const $ = (id) => document.getElementById(id);

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json", "X-RAP-Request": "console" };
    if (csrf()) headers["X-CSRF-Token"] = csrf();
    const res = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.error && (data.error.message || data.error.code)) || res.statusText);
      err.code = data && data.error && data.error.code;
      err.details = data && data.error && data.error.details;
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function flash(msg, bad) {
    const f = $("flash");
    if (!f) return;
    f.textContent = msg;
    f.className = bad ? "bad" : "good";
  }

  // askStepUp shows the step-up dialog naming the action in words and
  // resolves with a code (or null on cancel / Escape). Focus stays inside the
  // dialog while it is open and returns to the control that opened it.
  function askStepUp(what) {
    return new Promise((resolve) => {
      const m = $("stepup");
      const opener = document.activeElement;
      $("stepup-what").textContent = what;
      $("stepup-error").textContent = "";
      $("stepup-code").value = "";
      m.hidden = false;
      $("stepup-code").focus();
      const done = (v) => {
        m.hidden = true; $("stepup-submit").onclick = null; $("stepup-cancel").onclick = null; m.onkeydown = null;
        if (opener && opener.focus) opener.focus();
        resolve(v);
      };
      $("stepup-submit").onclick = () => done($("stepup-code").value.trim());
      $("stepup-cancel").onclick = () => done(null);
      $("stepup-code").onkeydown = (e) => { if (e.key === "Enter") { e.preventDefault(); done($("stepup-code").value.trim()); } };
      m.onkeydown = (e) => {
        if (e.key === "Escape") { e.preventDefault(); done(null); return; }
        if (e.key !== "Tab") return;
        const f = Array.from(m.querySelectorAll("input, button")).filter((x) => !x.disabled);
        const first = f[0], last = f[f.length - 1];
        if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
        else if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
      };
    });
  }

  // enrollLine is the ready-to-run agent command for a created join token
  // (the same line `rapctl token create` prints).
  function enrollLine(out) {
    return "rap-node-agent enroll --authority " + location.host + " --token " + out.token + " --ca-pin " + out.ca_pin;
  }

  async function perform(method, path, body, stepup, show, what) {
    if (stepup) {
      const code = await askStepUp(what || (method + " " + path));
      if (code === null) return;
      try {
        await api("POST", "/v1/auth/step-up", { method, path, totp_code: code });
      } catch (e) {
        let msg = "Step-up refused: " + e.message + (e.code ? " (" + e.code + ")" : "");
        if (e.code === "not_leader" && e.details && e.details.leader_api_addr) msg += " — your code was not used; open the console on the leader: https://" + e.details.leader_api_addr + "/console/";
        flash(msg, true);
        return;
      }
    }
    try {
      const out = await api(method, path, body);
      if (show === "enroll" && out && out.token) {
        const p = $("enroll-line");
        if (p) { $("enroll").hidden = false; p.textContent = enrollLine(out); }
        flash("Done: " + (what || "join token created") + ". Copy the enroll line below now: the token is not shown again.");
        return;
      }
      if (show && out && out[show] !== undefined) {
        const p = $("shown");
        if (p) { p.hidden = false; p.textContent = show + ":\n" + (Array.isArray(out[show]) ? out[show].join("\n") : out[show]); }
        flash("Done. Copy the value shown below now: it is not shown again.");
        return;
      }
      flash("Done: " + (what || (method + " " + path)));
      setTimeout(() => location.reload(), 600);
    } catch (e) {
      let msg = e.message + (e.code ? " (" + e.code + ")" : "");
      if (e.code === "not_leader" && e.details && e.details.leader_api_addr) msg += " — open the console on the leader: https://" + e.details.leader_api_addr + "/console/";
      flash("Refused: " + msg, true);
    }
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button.act");
    if (!b) return;
    ev.preventDefault();
    if (b.dataset.confirm && !window.confirm(b.dataset.confirm)) return;
    const body = b.dataset.body ? JSON.parse(b.dataset.body) : {};
    perform(b.dataset.method, b.dataset.path, body, !!b.dataset.stepup, b.dataset.show, b.dataset.what);
  });

  document.addEventListener("submit", (ev) => {
    const f = ev.target;
    if (!f.classList.contains("api-form")) return;
    ev.preventDefault();
    let path = f.dataset.path;
    let what = f.dataset.what || "";
    const body = {};
    for (const el of f.elements) {
      if (!el.name) continue;
      // The words of the action use what the owner sees (a select's label).
      const shown = el.tagName === "SELECT" && el.selectedOptions.length ? el.selectedOptions[0].text : el.value;
      what = what.replace("{" + el.name + "}", shown);
      if (el.name.startsWith("b_")) { if (el.value !== "") body[el.name.slice(2)] = el.value; }
      else if (el.name.startsWith("n_")) { if (el.value !== "") body[el.name.slice(2)] = Number(el.value) * Number(el.dataset.scale || 1); }
      else if (el.name.startsWith("l_")) { const xs = el.tagName === "SELECT" ? Array.from(el.selectedOptions).map((o) => o.value) : el.value.split(",").map((x) => x.trim()).filter((x) => x); if (xs.length) body[el.name.slice(2)] = xs; }
      else path = path.replace("{" + el.name + "}", encodeURIComponent(el.value));
    }
    perform(f.dataset.method, path, body, !!f.dataset.stepup, f.dataset.show, what);
  });

  const cp = $("enroll-copy");
  if (cp) cp.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("enroll-line").textContent); flash("Enroll line copied."); }
    catch (e) { const r = document.createRange(); r.selectNodeContents($("enroll-line")); const s = getSelection(); s.removeAllRanges(); s.addRange(r); flash("Select-all done: press Ctrl+C to copy."); }
  });

  const sel = $("cluster-select");
  if (sel) sel.addEventListener("change", () => { const u = new URL(location.href); if (sel.value) u.searchParams.set("cluster", sel.value); else u.searchParams.delete("cluster"); location.href = u.toString(); });

  const lo = $("logout");
  if (lo) lo.addEventListener("click", async () => { try { await api("POST", "/v1/auth/logout", {}); } catch (e) { /* ignore */ } location.href = "/console/login"; });

  const lf = $("login-form");
  if (lf) lf.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = { username: $("login-user").value, password: $("login-password").value };
    if ($("login-totp").value) body.totp_code = $("login-totp").value.trim();
    if ($("login-recovery").value) body.recovery_code = $("login-recovery").value.trim();
    try {
      const out = await api("POST", "/v1/auth/login", body);
      // An organization account belongs in its organization's console.
      if (out && out.user && out.user.organization_id) { location.href = "/org/" + out.user.organization_id + "/"; return; }
      const next = new URLSearchParams(location.search).get("next");
      location.href = next && next.startsWith("/console/") ? next : "/console/";
    } catch (e) {
      $("login-error").textContent = e.code === "mfa_required" ? "Enter the code from your authenticator app." : e.message;
      if (e.code === "mfa_required") $("login-totp").focus();
    }
  });

  const sb = $("setup-begin");
  if (sb) sb.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const out = await api("POST", "/v1/auth/setup/begin", { username: $("setup-user").value, setup_secret: $("setup-secret").value.trim() });
      $("setup-qr").src = "data:image/png;base64," + out.qr_png_base64;
      $("setup-totp-secret").textContent = out.totp_secret;
      $("setup-uri").textContent = out.otpauth_uri;
      sb.hidden = true;
      $("setup-complete").hidden = false;
    } catch (e) { $("setup-error").textContent = e.message; }
  });
  const sc = $("setup-complete");
  if (sc) sc.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const out = await api("POST", "/v1/auth/setup/complete", { username: $("setup-user").value, setup_secret: $("setup-secret").value.trim(), password: $("setup-password").value, totp_code: $("setup-code").value.trim() });
      $("setup-codes").textContent = (out.recovery_codes || []).join("\n");
      // An organization account continues in its organization's console.
      const org = out.user && out.user.organization_id;
      if (org && $("setup-open")) $("setup-open").href = "/org/" + org + "/";
      sc.hidden = true;
      $("setup-done").hidden = false;
    } catch (e) { $("setup-error2").textContent = e.message; }
  });
})();
