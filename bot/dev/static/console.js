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
  const pane = $("thread");
  const since = body.dataset.since;
  const dismissed = new Set(); // ephemeral messages dismissed on this page
  let thread = null; // the parent key of the thread open in the side pane
  let threads = {};
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
  // A re-rendered message keeps the focus on the same button (a card's, or its "N replies").
  const focusKey = (within = messages) => {
    const el = document.activeElement;
    if (!el || !within.contains(el)) return null;
    const q = (name) => `[${name}="${CSS.escape(el.getAttribute(name) || "")}"]`;
    if (el.dataset.action) return `button${q("data-message")}${q("data-block")}${q("data-action")}`;
    if (el.dataset.thread) return `button.thread-link${q("data-thread")}`;
    return null;
  };

  const restoreFocus = (key, within = messages) => {
    const again = key && within.querySelector(key);
    if (again && document.activeElement !== again) again.focus();
  };

  // The channel follows the newest message, as Slack does, unless the reader scrolled up to
  // read older ones: then a "New messages" button appears instead of a jump.
  let follow = true;
  const nearBottom = () => messages.scrollTop + messages.clientHeight >= messages.scrollHeight - 40;
  const toBottom = () => {
    messages.scrollTop = messages.scrollHeight;
    follow = true;
    $("jump").hidden = true;
  };
  messages.addEventListener("scroll", () => {
    follow = nearBottom();
    if (follow) $("jump").hidden = true;
  });
  $("jump").addEventListener("click", () => { toBottom(); $("composer-input").focus(); });

  const applyMessages = (all) => {
    const items = all.filter((m) => !dismissed.has(m.key));
    const atBottom = follow;
    const before = messages.querySelectorAll(".row").length;
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
      }
      const want = previous ? previous.nextSibling : messages.firstChild;
      if (want !== row) messages.insertBefore(row, want);
      previous = row;
    }
    if (!items.length) messages.innerHTML = '<p class="empty muted">No messages yet.</p>';
    restoreFocus(focus);
    if (atBottom) toBottom();
    else if (items.length > before) $("jump").hidden = false;
  };

  // -- ephemeral messages: Dismiss hides one; a reload drops them all (the server shows a page
  // only those sent after it opened) ---------------------------------------------------------
  const dropDismissed = (within) => {
    for (const el of within.querySelectorAll("article.ephemeral[data-key]")) {
      if (dismissed.has(el.dataset.key)) el.remove();
    }
  };

  const dismiss = (e) => {
    const b = e.target.closest("button[data-dismiss]");
    if (!b) return false;
    const key = b.dataset.dismiss;
    dismissed.add(key);
    const article = b.closest("article");
    const row = article && article.parentElement.classList.contains("row") ? article.parentElement : null;
    (row || article).remove();
    $("composer-input").focus();
    return true;
  };

  // -- the thread pane: a thread folds into "N replies" and opens beside the channel ------------
  const applyThread = () => {
    const body = $("thread-body");
    const html = thread ? threads[thread] : null;
    if (!html) {
      if (!pane.hidden) closeThread();
      return;
    }
    if (body.dataset.html === html) return;
    const focus = pane.contains(document.activeElement) ? focusKey(pane) : null;
    const follow = body.scrollTop + body.clientHeight >= body.scrollHeight - 40;
    body.innerHTML = html;
    body.dataset.html = html;
    dropDismissed(body);
    restoreFocus(focus, pane);
    if (follow) body.scrollTop = body.scrollHeight;
  };

  const openThread = (key) => {
    thread = key;
    $("thread-where").textContent = $("channel-title").textContent;
    $("thread-body").dataset.html = "";
    pane.hidden = false;
    document.body.classList.add("thread-open");
    applyThread();
    $("thread-body").scrollTop = $("thread-body").scrollHeight;
    $("thread-close").focus();
  };

  const closeThread = () => {
    const was = thread;
    const el = document.activeElement;
    const focused = !el || el === document.body || pane.contains(el); // else leave it where it is
    thread = null;
    pane.hidden = true;
    document.body.classList.remove("thread-open");
    $("thread-body").innerHTML = "";
    const link = was && messages.querySelector(`button.thread-link[data-thread="${CSS.escape(was)}"]`);
    if (link && focused) link.focus();
  };

  $("thread-close").addEventListener("click", closeThread);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && thread && !modal.open && !$("confirm").open) closeThread();
  });

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
    threads = snap.threads || {};
    applyThread();
    applyModal(snap.modal);
  };

  // The server ends each event stream after a while with a "rotate" event; the next one opens
  // at once. "reconnecting…" shows only when the console has really been out of reach a while.
  let outage = null;
  const live = (on) => {
    $("live").textContent = on ? "live" : "reconnecting…";
    $("live").classList.toggle("on", on);
  };
  const connect = () => {
    if (stream) stream.close();
    const q = new URLSearchParams({ user, channel, since });
    const opened = new EventSource(`${base}/api/stream?${q}`);
    stream = opened;
    opened.onmessage = (e) => apply(JSON.parse(e.data));
    opened.addEventListener("rotate", () => { if (stream === opened) connect(); });
    opened.onopen = () => {
      clearTimeout(outage);
      outage = null;
      live(true);
    };
    opened.onerror = () => {
      if (stream !== opened || outage) return;
      outage = setTimeout(() => live(false), 2500);
    };
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
    if (thread) closeThread();
    modalId = null;
    if (modal.open) modal.close();
    messages.innerHTML = "";
    follow = true;
    remember();
    connect();
  });

  $("channels").addEventListener("click", (e) => {
    const b = e.target.closest("button[data-channel]");
    if (!b || b.dataset.channel === channel) return;
    channel = b.dataset.channel;
    if (thread) closeThread();
    messages.innerHTML = "";
    follow = true;
    remember();
    connect();
    $("composer-input").focus();
  });

  // -- buttons and the composer -----------------------------------------------------------------
  messages.addEventListener("click", (e) => {
    const link = e.target.closest("button.thread-link");
    if (link) openThread(link.dataset.thread);
  });

  // A button with a confirm object asks first, as Slack does: resolves true on its yes.
  const confirmDialog = $("confirm");
  const ask = (b) => new Promise((resolve) => {
    $("confirm-title").innerHTML = b.dataset.confirmTitle;
    $("confirm-text").innerHTML = b.dataset.confirmText || "";
    $("confirm-yes").innerHTML = b.dataset.confirmYes;
    $("confirm-no").innerHTML = b.dataset.confirmNo;
    $("confirm-yes").className = `bk-btn bk-${b.dataset.confirmStyle === "danger" ? "danger" : "primary"}`;
    confirmDialog.returnValue = "";
    confirmDialog.addEventListener("close", () => {
      resolve(confirmDialog.returnValue === "yes");
      b.focus();
    }, { once: true });
    confirmDialog.showModal();
    $("confirm-no").focus();
  });

  const press = async (e) => {
    if (dismiss(e)) return;
    const b = e.target.closest("button[data-action]");
    if (!b || b.getAttribute("aria-busy") === "true") return;
    if (b.dataset.confirmTitle !== undefined && !(await ask(b))) return;
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
  };
  messages.addEventListener("click", press);
  pane.addEventListener("click", press);

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
    toBottom(); // what you send and its answer are shown, wherever you had scrolled to
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

  // -- App Home: opening it sends app_home_opened; the tab shows what the bot published --------
  const showHome = (on) => {
    $("home").hidden = !on;
    messages.hidden = on;
    $("composer").hidden = on;
    $("app-home").toggleAttribute("aria-current", on);
    if (on) {
      for (const b of $("channels").querySelectorAll("[aria-current]")) b.removeAttribute("aria-current");
      $("channel-title").textContent = "releasebot · Home";
    }
  };
  $("app-home").addEventListener("click", async () => {
    showHome(true);
    $("home").innerHTML = '<p class="muted">Loading…</p>';
    const { data } = await api("/api/home", { user });
    $("home").innerHTML = data.html || '<p class="muted">The bot published no Home view.</p>';
  });
  $("channels").addEventListener("click", () => { if (!$("home").hidden) showHome(false); }, true);
  $("user").addEventListener("change", () => { if (!$("home").hidden) showHome(false); });

  $("upload").addEventListener("submit", async (e) => {
    e.preventDefault();
    const form = new FormData($("upload"));
    const payload = { user, script: form.get("script"), tag: form.get("tag"), message: form.get("message"), mode: form.get("mode") };
    const { data } = await api("/api/cloudflare/upload", payload);
    if (!data.ok) { toast(data.error || "The simulator refused."); return; }
    const v = data.version;
    toast(`Uploaded ${v.tag || v.id.slice(0, 8)} to ${v.script} (${v.mode}); not deployed yet`);
    $("upload-tag").value = "";
    $("upload-message").value = "";
    await refreshCloudflare();
  });

  remember();
  toBottom(); // the page opens on the newest message
  connect();
  refreshCloudflare();
  setInterval(() => refreshCloudflare(), 1500);
  // Slack's {ago} dates count on for the viewer: "in 3m 40s", then "in 3m 39s", ...
  const span = (s) => {
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    if (h) return `${h}h ${m}m`;
    if (m) return `${m}m ${String(r).padStart(2, "0")}s`;
    return `${r}s`;
  };
  const countOn = () => {
    for (const t of document.querySelectorAll("time[data-ago]")) {
      const s = Math.round((Date.parse(t.getAttribute("datetime")) - Date.now()) / 1000);
      const text = s >= 0 ? `in ${span(s)}` : `${span(-s)} ago`;
      if (t.textContent !== text) t.textContent = text;
    }
  };
  setInterval(countOn, 1000);
  $("composer-input").focus();
})();
