// RAP Fabric organization console: every change is a fetch() to the
// organization API with the session's CSRF token; high-risk actions first
// obtain a single-use step-up grant for exactly that request.
"use strict";
(function () {
  const meta = (n) => (document.querySelector('meta[name="' + n + '"]') || {}).content || "";
  const $ = (id) => document.getElementById(id);

  async function api(method, path, body) {
    const headers = { "Content-Type": "application/json", "X-RAP-Request": "console" };
    if (meta("csrf-token")) headers["X-CSRF-Token"] = meta("csrf-token");
    const res = await fetch(path, { method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body) });
    let data = null;
    try { data = await res.json(); } catch (e) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.error && (data.error.message || data.error.code)) || res.statusText);
      err.code = data && data.error && data.error.code;
      throw err;
    }
    return data;
  }
  function flash(msg, bad) { const f = $("flash"); if (f) { f.textContent = msg; f.className = bad ? "bad" : "good"; } }
  function askStepUp(what) {
    return new Promise((resolve) => {
      const m = $("stepup");
      $("stepup-what").textContent = what;
      $("stepup-code").value = "";
      m.hidden = false;
      $("stepup-code").focus();
      const done = (v) => { m.hidden = true; resolve(v); };
      $("stepup-submit").onclick = () => done($("stepup-code").value.trim());
      $("stepup-cancel").onclick = () => done(null);
    });
  }
  async function perform(method, path, body, stepup) {
    if (stepup) {
      const code = await askStepUp(method + " " + path);
      if (code === null) return;
      try { await api("POST", "/v1/orgs/" + meta("org") + "/step-up", { method, path, totp_code: code }); }
      catch (e) { flash("Step-up refused: " + e.message, true); return; }
    }
    try {
      const out = await api(method, path, body);
      if (out && out.setup_secret) { flash("Created. One-time setup secret (shown once): " + out.setup_secret, false); return; }
      location.reload();
    } catch (e) { flash(e.message + (e.code ? " (" + e.code + ")" : ""), true); }
  }
  document.addEventListener("DOMContentLoaded", () => {
    const lo = $("logout");
    if (lo) lo.addEventListener("click", async () => { try { await api("POST", "/v1/orgs/" + meta("org") + "/logout", {}); } catch (e) { /* ignore */ } location.href = "/org/login"; });
    const lf = $("org-login-form");
    if (lf) lf.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const body = { username: $("login-user").value.trim(), password: $("login-password").value };
      if ($("login-totp").value) body.totp_code = $("login-totp").value.trim();
      try {
        const out = await api("POST", "/v1/auth/login", body);
        const org = out && out.user && out.user.organization_id;
        if (!org) { $("login-error").textContent = "This is not an organization account: use the platform console."; return; }
        location.href = "/org/" + org + "/";
      } catch (e) { $("login-error").textContent = e.code === "mfa_required" ? "Enter the code from your authenticator app." : e.message; }
    });
    document.querySelectorAll("button.act").forEach((b) => b.addEventListener("click", () => perform(b.dataset.method, b.dataset.path, {}, b.dataset.stepup === "1")));
    document.querySelectorAll("form.act-form").forEach((f) => f.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const body = {};
      new FormData(f).forEach((v, k) => { const el = f.elements[k]; body[k] = el && el.dataset && el.dataset.int ? parseInt(v, 10) : v; });
      perform("POST", f.dataset.path, body, f.dataset.stepup === "1");
    }));
  });
})();
