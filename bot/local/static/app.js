// The local workspace page: pick who you are, talk to the bot with /jit, click its
// buttons, fill in its modals, and watch what the webhook receiver is sent.
// DOM is built with createElement/textContent only (see blocks.js).
"use strict";

(() => {
  const { el, render } = JitBlocks;
  const page = {
    me: localStorage.getItem("jit-local-me") || "",
    conversation: "",
    state: null,
    version: null,
    modalKey: "",
    poll: null,
  };

  const $ = (id) => document.getElementById(id);

  async function api(path, body) {
    const response = await fetch(path, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ as: page.me, ...body }),
    });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) showError(answer.error || "HTTP " + response.status);
    return answer;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = !text;
  }

  // ------------------------------------------------------------------ state

  async function refresh(waitForChange) {
    if (page.poll) page.poll.abort();
    const poll = new AbortController();
    page.poll = poll;
    const since = waitForChange && page.version !== null ? "&since=" + page.version : "";
    const url = "/local/api/state?as=" + encodeURIComponent(page.me) + since;
    try {
      const response = await fetch(url, { signal: poll.signal });
      if (response.status === 429) {
        // The server has enough pages waiting for changes: ask again in a moment.
        await new Promise((resolve) => setTimeout(resolve, 1000));
        if (page.poll === poll) refresh(true);
        return;
      }
      if (!response.ok) throw new Error("HTTP " + response.status);
      const state = await response.json();
      if (poll.signal.aborted) return;
      page.state = state;
      page.version = state.version;
      draw();
    } catch (error) {
      if (poll.signal.aborted) return;
      $("status").textContent = "reconnecting…";
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    if (page.poll === poll) refresh(true);
  }

  function draw() {
    const state = page.state;
    $("status").textContent = "";
    if (!state.people.some((p) => p.id === page.me) && state.people.length) {
      choose(state.people[0].id);
      return;
    }
    drawPeople(state);
    drawConversations(state);
    drawConversation(state);
    drawModal(state);
    drawReceiver(state);
    $("about").textContent =
      "config: " + state.about.config + " · database: " + state.about.database;
  }

  function choose(id) {
    page.me = id;
    page.version = null;
    page.modalKey = "";
    localStorage.setItem("jit-local-me", id);
    refresh(false);
  }

  function drawPeople(state) {
    const select = $("who");
    if (select.dataset.people !== JSON.stringify(state.people)) {
      select.replaceChildren();
      state.people.forEach((person) => {
        const label = person.real_name + (person.title ? " — " + person.title : "");
        const option = el("option", "", label);
        option.value = person.id;
        select.appendChild(option);
      });
      select.dataset.people = JSON.stringify(state.people);
    }
    select.value = page.me;
  }

  function drawConversations(state) {
    const list = $("conversations");
    list.replaceChildren();
    if (!state.conversations.some((c) => c.id === page.conversation)) {
      page.conversation = state.conversations.length ? state.conversations[0].id : "";
    }
    state.conversations.forEach((conversation) => {
      const label = (conversation.kind === "channel" ? "# " : "@ ") + conversation.name;
      const item = el("button", "conversation-link", label);
      item.type = "button";
      item.dataset.id = conversation.id;
      item.classList.toggle("active", conversation.id === page.conversation);
      item.appendChild(el("span", "count", String(conversation.messages.length)));
      item.addEventListener("click", () => {
        page.conversation = conversation.id;
        draw();
      });
      list.appendChild(item);
    });
  }

  // Redrawn only when what it shows changed, so a selection or a hovered button survives.
  function unchanged(node, content) {
    const key = JSON.stringify(content);
    if (node.dataset.drawn === key) return true;
    node.dataset.drawn = key;
    return false;
  }

  function drawConversation(state) {
    const conversation = state.conversations.find((c) => c.id === page.conversation);
    const log = $("messages");
    if (unchanged(log, [page.me, conversation, state.names])) return;
    const atBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    log.replaceChildren();
    $("conversation-title").textContent = conversation
      ? (conversation.kind === "channel" ? "#" : "@") + conversation.name
      : "";
    if (!conversation) return;
    conversation.messages.forEach((message) => log.appendChild(messageNode(message, state)));
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  function messageNode(message, state) {
    const node = el("article", "message");
    node.classList.toggle("ephemeral", message.ephemeral);
    const head = node.appendChild(el("header", "message-head"));
    head.appendChild(el("strong", "author", "jit-bot"));
    head.appendChild(el("span", "app-badge", "APP"));
    if (message.at) head.appendChild(el("time", "", new Date(message.at * 1000).toLocaleTimeString()));
    if (message.ephemeral) head.appendChild(el("span", "only-you", "Only visible to you"));
    if (message.edited) head.appendChild(el("span", "edited", "(edited)"));
    const onAction = message.ts && !message.ephemeral
      ? (action) => api("/local/api/click", { channel: page.conversation, ts: message.ts, action })
      : null;
    if (message.blocks.length) {
      node.appendChild(render(message.blocks, { names: state.names, onAction }));
    } else {
      node.appendChild(JitBlocks.mrkdwn(message.text, state.names));
    }
    return node;
  }

  // ------------------------------------------------------------------ modal

  function modalValues() {
    const values = {};
    document.querySelectorAll("#modal [data-block-id]").forEach((field) => {
      const block = (values[field.dataset.blockId] ||= {});
      block[field.dataset.actionId] = field.value;
    });
    return values;
  }

  function inputBlock(block, modal, kept) {
    const element = block.element || {};
    const node = el("div", "block input");
    node.dataset.block = block.block_id;
    const label = node.appendChild(el("label", "input-label", block.label && block.label.text));
    if (block.optional) label.appendChild(el("span", "optional", " (optional)"));
    let field;
    if (element.type === "static_select") {
      field = el("select", "field");
      (element.options || []).forEach((option) => {
        const choice = el("option", "", option.text && option.text.text);
        choice.value = option.value;
        field.appendChild(choice);
      });
      const initial = element.initial_option && element.initial_option.value;
      field.value = kept !== undefined ? kept : initial || "";
      // A kept choice the re-rendered form no longer offers falls back to its default.
      if (field.selectedIndex < 0) field.value = initial || "";
      if (block.dispatch_action) {
        field.addEventListener("change", () =>
          api("/local/api/choose", {
            view_id: modal.id,
            values: modalValues(),
            action: { action_id: element.action_id, block_id: block.block_id, value: field.value },
          }),
        );
      }
    } else {
      field = el(element.multiline ? "textarea" : "input", "field");
      if (element.max_length) field.maxLength = element.max_length;
      field.value = kept !== undefined ? kept : element.initial_value || "";
    }
    field.dataset.blockId = block.block_id;
    field.dataset.actionId = element.action_id;
    node.appendChild(field);
    if (block.hint) node.appendChild(el("div", "hint", block.hint.text));
    const error = modal.errors[block.block_id];
    if (error) node.appendChild(el("div", "field-error", error));
    return node;
  }

  function drawModal(state) {
    const modal = state.modal;
    const key = JSON.stringify(modal);
    if (key === page.modalKey) return;
    const kept = modal && $("modal").dataset.viewId === modal.id ? modalValues() : {};
    page.modalKey = key;
    const root = $("modal");
    root.replaceChildren();
    root.hidden = !modal;
    root.dataset.viewId = modal ? modal.id : "";
    if (!modal) return;
    const box = root.appendChild(el("form", "modal"));
    box.appendChild(el("h2", "modal-title", modal.title && modal.title.text));
    const input = (block) => {
      const typed = (kept[block.block_id] || {})[block.element && block.element.action_id];
      return inputBlock(block, modal, typed);
    };
    box.appendChild(render(modal.blocks, { names: state.names, onAction: null, input }));
    const buttons = box.appendChild(el("div", "modal-buttons"));
    const close = buttons.appendChild(el("button", "btn modal-close", (modal.close || {}).text || "Close"));
    close.type = "button";
    close.addEventListener("click", () => api("/local/api/close", { view_id: modal.id }));
    if (modal.submit) {
      const submit = buttons.appendChild(el("button", "btn btn-primary modal-submit", modal.submit.text));
      submit.type = "submit";
    }
    box.addEventListener("submit", (event) => {
      event.preventDefault();
      api("/local/api/submit", { view_id: modal.id, values: modalValues() });
    });
  }

  // ------------------------------------------------------------------ receiver

  function drawReceiver(state) {
    $("receiver-url").textContent = state.about.receiver_url;
    const list = $("receiver-calls");
    if (unchanged(list, state.receiver)) return;
    list.replaceChildren();
    state.receiver.slice().reverse().forEach((call) => {
      const node = el("details", "call");
      node.classList.add(call.verified ? "verified" : "refused");
      const summary = node.appendChild(el("summary"));
      summary.appendChild(el("span", "event event-" + call.event, call.event));
      const payload = typeof call.payload === "object" && call.payload ? call.payload : {};
      const who = payload.principal ? payload.principal.email : "";
      const target = payload.target ? payload.target.name : "";
      summary.appendChild(el("span", "call-what", " " + target + " → " + who));
      summary.appendChild(
        el("span", "check", call.verified ? "signature verified" : "refused (" + call.status + ")"),
      );
      node.appendChild(el("div", "signature", "X-JIT-Signature: " + call.signature));
      node.appendChild(el("pre", "payload", JSON.stringify(call.payload, null, 2)));
      list.appendChild(node);
    });
  }

  // ------------------------------------------------------------------ wiring

  $("who").addEventListener("change", (event) => choose(event.target.value));
  $("composer-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const box = $("composer");
    const text = box.value.trim();
    if (!text) return;
    showError("");
    const answer = await api("/local/api/command", { text, channel: page.conversation });
    if (answer.ok) box.value = "";
  });
  refresh(false);
})();
