// releasebot dev · browser console. The server renders all HTML; this file only wires the
// page: an event stream per (person, channel), the composer, buttons, the modal, the panel.
(() => {
  "use strict";
  const body = document.body;
  const base = body.dataset.base;
  const command = body.dataset.command;
  const $ = (id) => document.getElementById(id);
  const messages = $("messages");
  const modal = $("modal");
  let user = body.dataset.user;
  let channel = body.dataset.channel;
  let stream = null;
  let modalId = null;
  const collapsed = new Set();
  const sent = [];
  let sentAt = 0;

  const api = async (path, payload) => {
    const res = await fetch(base + path, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(payload),
    });
    let data = {};
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    return { res, data };
  };

  let toastTimer = null;
  const toast = (text) => {
    const t = $("toast");
    t.textContent = text;
    t.classList.add("show");
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => t.classList.remove("show"), 4000);
  };

  // -- messages -----------------------------------------------------------------------------
  const focusKey = () => {
    const el = document.activeElement;
    if (!el || !messages.contains(el) || !el.dataset.action) return null;
    return [el.dataset.message, el.dataset.block, el.dataset.action];
  };

  const restoreFocus = (key) => {
    if (!key) return;
    for (const b of messages.querySelectorAll("button[data-action]")) {
      if (b.dataset.message === key[0] && b.dataset.block === key[1] && b.dataset.action === key[2]) {
        b.focus();
        return;
      }
    }
  };

  const applyMessages = (items) => {
    const atBottom = messages.scrollTop + messages.clientHeight >= messages.scrollHeight - 60;
    const focus = focusKey();
    const wanted = new Set(items.map((m) => m.id));
    for (const row of [...messages.children]) {
      if (!wanted.has(row.id)) row.remove();
    }
    let previous = null;
    for (const item of items) {
      let row = document.getElementById(item.id);
      if (!row) {
        row = document.createElement("div");
        row.className = "row";
        row.id = item.id;
      }
      if (row.dataset.html !== item.html) {
        row.innerHTML = item.html;
        row.dataset.html = item.html;
        for (const d of row.querySelectorAll("details.thread")) {
          if (collapsed.has(d.dataset.thread)) d.open = false;
        }
      }
      const want = previous ? previous.nextSibling : messages.firstChild;
      if (want !== row) messages.insertBefore(row, want);
      previous = row;
    }
    if (!items.length) messages.innerHTML = '<p class="empty muted">No messages yet.</p>';
    restoreFocus(focus);
    if (atBottom) messages.scrollTop = messages.scrollHeight;
  };

  messages.addEventListener("toggle", (e) => {
    const d = e.target;
    if (!d.dataset || !d.dataset.thread) return;
    if (d.open) collapsed.delete(d.dataset.thread); else collapsed.add(d.dataset.thread);
  }, true);

  const applyChannels = (snap) => {
    const list = $("channels");
    if (list.dataset.html !== snap.channels_html) {
      list.innerHTML = snap.channels_html;
      list.dataset.html = snap.channels_html;
    }
    $("channel-title").textContent = snap.title;
    document.title = `releasebot console · ${snap.title}`;
    $("composer-input").setAttribute("aria-label", `Send a slash command in ${snap.title}, e.g. ${command} help`);
  };

  // -- the modal ------------------------------------------------------------------------------
  const applyModal = (view) => {
    if (!view) {
      if (modal.open) modal.close();
      modalId = null;
      return;
    }
    if (modalId === view.id && modal.open) return;
    modalId = view.id;
    $("modal-title").innerHTML = view.title;
    $("modal-body").innerHTML = view.html;
    $("modal-submit").innerHTML = view.submit;
    $("modal-close").innerHTML = view.close;
    $("modal-error").textContent = "";
    if (!modal.open) modal.showModal();
    const first = modal.querySelector("#modal-body input, #modal-body textarea");
    (first || $("modal-submit")).focus();
  };

  const closeModal = async () => {
    if (!modalId) return;
    const id = modalId;
    modalId = null;
    if (modal.open) modal.close();
    await api("/api/view", { user, view_id: id, close: true });
  };

  $("modal-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const values = {};
    for (const el of modal.querySelectorAll("#modal-body [name]")) values[el.name] = el.value;
    for (const el of modal.querySelectorAll("[data-error-for]")) el.textContent = "";
    $("modal-submit").disabled = true;
    try {
      const { data } = await api("/api/view", { user, view_id: modalId, values });
      if (data.errors) {
        for (const [block, text] of Object.entries(data.errors)) {
          const slot = modal.querySelector(`[data-error-for="${CSS.escape(block)}"]`);
          (slot || $("modal-error")).textContent = text;
        }
      } else if (!data.ok) {
        $("modal-error").textContent = data.error || "Could not submit.";
      } else {
        modalId = null;
        modal.close();
      }
    } finally {
      $("modal-submit").disabled = false;
    }
  });
  $("modal-close").addEventListener("click", closeModal);
  modal.addEventListener("cancel", (e) => { e.preventDefault(); closeModal(); });
  modal.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && e.target.tagName === "TEXTAREA" && (e.metaKey || e.ctrlKey)) {
      $("modal-form").requestSubmit();
    }
  });

  // -- live updates -----------------------------------------------------------------------------
  const apply = (snap) => {
    if (snap.user !== user || snap.channel !== channel) return;
    applyChannels(snap);
    applyMessages(snap.messages);
    applyModal(snap.modal);
  };

  const connect = () => {
    if (stream) stream.close();
    const q = new URLSearchParams({ user, channel });
    stream = new EventSource(`${base}/api/stream?${q}`);
    stream.onmessage = (e) => apply(JSON.parse(e.data));
    stream.onopen = () => { $("live").textContent = "live"; $("live").classList.add("on"); };
    stream.onerror = () => { $("live").textContent = "reconnecting…"; $("live").classList.remove("on"); };
  };

  const remember = () => {
    const name = $("user").selectedOptions[0].textContent.split(" · ")[0];
    const url = new URL(location.href);
    url.searchParams.set("as", name);
    url.searchParams.set("channel", channel);
    url.searchParams.delete("user");
    history.replaceState(null, "", url);
    $("role").textContent = `${name} is ${$("user").selectedOptions[0].dataset.role}`;
  };

  $("user").addEventListener("change", () => {
    user = $("user").value;
    modalId = null;
    if (modal.open) modal.close();
    messages.innerHTML = "";
    remember();
    connect();
  });

  $("channels").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-channel]");
    if (!b || b.dataset.channel === channel) return;
    channel = b.dataset.channel;
    messages.innerHTML = "";
    remember();
    connect();
    $("composer-input").focus();
  });

  // -- buttons and the composer -----------------------------------------------------------------
  messages.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-action]");
    if (!b || b.getAttribute("aria-busy") === "true") return;
    b.setAttribute("aria-busy", "true"); // not disabled: a disabled button would drop focus
    try {
      const { data } = await api("/api/action", {
        user, message: b.dataset.message, block: b.dataset.block, action: b.dataset.action,
      });
      if (!data.ok) toast(data.error || "The bot did not take that.");
    } catch (err) {
      toast(`Could not reach the console: ${err}`);
    } finally {
      b.removeAttribute("aria-busy");
    }
  });

  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("composer-input");
    const text = input.value.trim();
    if (!text) return;
    if (!text.startsWith("/")) {
      toast(`Only slash commands reach the bot here: try ${command} help`);
      return;
    }
    sent.push(text);
    sentAt = sent.length;
    input.value = "";
    try {
      const { data } = await api("/api/command", { user, channel, text });
      if (data.status && data.status !== 200) toast(`The bot answered HTTP ${data.status}`);
    } catch (err) {
      toast(`Could not reach the console: ${err}`);
    }
  });

  $("composer-input").addEventListener("keydown", (e) => {
    const input = e.target;
    if (e.key === "ArrowUp" && sentAt > 0) {
      sentAt -= 1;
      input.value = sent[sentAt];
      e.preventDefault();
    } else if (e.key === "ArrowDown" && sentAt < sent.length) {
      sentAt += 1;
      input.value = sent[sentAt] || "";
      e.preventDefault();
    }
  });

  // -- Cloudflare panel ---------------------------------------------------------------------------
  const workers = $("workers");
  const refreshCloudflare = async (pressed) => {
    try {
      const res = await fetch(`${base}/api/cloudflare`);
      const data = await res.json();
      if (workers.dataset.html === data.html) return;
      const el = document.activeElement;
      const key = pressed || (el && workers.contains(el) ? [el.dataset.script, el.dataset.version] : null);
      // the pressed button is replaced by another one for the same version: focus that
      workers.innerHTML = data.html;
      workers.dataset.html = data.html;
      if (key) {
        const again = workers.querySelector(`button[data-script="${CSS.escape(key[0] || "")}"][data-version="${CSS.escape(key[1] || "")}"]`);
        if (again) again.focus();
      }
    } catch (err) {
      workers.textContent = "Simulator unreachable.";
    }
  };

  workers.addEventListener("click", async (e) => {
    const b = e.target.closest("button[data-version]");
    if (!b || b.getAttribute("aria-busy") === "true") return;
    b.setAttribute("aria-busy", "true");
    const { data } = await api("/api/cloudflare/mode", {
      script: b.dataset.script, version: b.dataset.version, mode: b.dataset.mode,
    });
    if (!data.ok) toast(data.error || "The simulator refused.");
    b.removeAttribute("aria-busy");
    await refreshCloudflare([b.dataset.script, b.dataset.version]);
  });

  remember();
  connect();
  refreshCloudflare();
  setInterval(() => refreshCloudflare(), 1500);
  $("composer-input").focus();
})();
