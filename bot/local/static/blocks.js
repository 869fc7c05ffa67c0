// Block Kit and mrkdwn, rendered into DOM nodes for the local workspace page.
// Every piece of text becomes a text node (textContent / createTextNode): nothing a
// message says is ever parsed as HTML, so a reason containing <script> shows as text.
"use strict";

const JitBlocks = (() => {
  const SAFE_LINK = /^(https?:|mailto:)/i;

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  // The emoji the bot's messages use; any other :name: stays as written.
  const EMOJI = {
    white_check_mark: "\u2705", rotating_light: "\u{1F6A8}", no_entry: "\u26D4",
    hourglass_flowing_sand: "\u23F3", gear: "\u2699\uFE0F", zzz: "\u{1F4A4}", x: "\u274C",
    warning: "\u26A0\uFE0F", unlock: "\u{1F513}", lock: "\u{1F512}",
    leftwards_arrow_with_hook: "\u21A9\uFE0F", boom: "\u{1F4A5}",
  };

  // Slack escapes only these three in message text.
  function unescape(text) {
    return text
      .replace(/:([a-z0-9_+-]+):/g, (whole, name) => (Object.hasOwn(EMOJI, name) ? EMOJI[name] : whole))
      .replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
  }

  function formatDate(seconds, fallback) {
    const when = new Date(Number(seconds) * 1000);
    return Number.isNaN(when.getTime()) ? fallback : when.toLocaleString();
  }

  // One <…> token: a mention, a channel, a date, a special mention or a link.
  function angle(token, names) {
    if (token.startsWith("@")) {
      const id = token.slice(1).split("|")[0];
      return el("span", "mention", "@" + (names[id] || id));
    }
    if (token.startsWith("#")) {
      const [id, label] = token.slice(1).split("|");
      return el("span", "mention", "#" + (label || id));
    }
    if (token.startsWith("!date^")) {
      const [spec, fallback] = token.split("|");
      const seconds = spec.split("^")[1];
      return el("time", "date", formatDate(seconds, unescape(fallback || "")));
    }
    if (token.startsWith("!")) {
      return el("span", "mention", "@" + token.slice(1).split("|")[0]);
    }
    const [url, label] = token.split("|");
    const href = unescape(url);
    if (!SAFE_LINK.test(href)) return document.createTextNode(unescape(label || url));
    const link = el("a", "link", unescape(label || url));
    link.setAttribute("href", href);
    link.setAttribute("target", "_blank");
    link.setAttribute("rel", "noopener noreferrer");
    return link;
  }

  const INLINE = [
    { re: /`([^`\n]+)`/, tag: "code", nested: false },
    { re: /\*([^*\n]+)\*/, tag: "strong", nested: true },
    { re: /(?:^|(?<=[\s(]))_([^_\n]+)_/, tag: "em", nested: true },
    { re: /~([^~\n]+)~/, tag: "s", nested: true },
  ];

  // Text without <…> tokens: *bold*, _italic_, ~strike~, `code`.
  function styled(text, parent) {
    let rest = text;
    while (rest) {
      let best = null;
      for (const rule of INLINE) {
        const match = rule.re.exec(rest);
        if (match && (best === null || match.index < best.match.index)) best = { rule, match };
      }
      if (best === null) {
        parent.appendChild(document.createTextNode(unescape(rest)));
        return;
      }
      const { rule, match } = best;
      if (match.index > 0) {
        parent.appendChild(document.createTextNode(unescape(rest.slice(0, match.index))));
      }
      const node = el(rule.tag);
      if (rule.nested) styled(match[1], node);
      else node.textContent = unescape(match[1]);
      parent.appendChild(node);
      rest = rest.slice(match.index + match[0].length);
    }
  }

  function inline(text, parent, names) {
    const tokens = /<([^<>\n]+)>/g;
    let last = 0;
    let match;
    while ((match = tokens.exec(text)) !== null) {
      styled(text.slice(last, match.index), parent);
      parent.appendChild(angle(match[1], names));
      last = match.index + match[0].length;
    }
    styled(text.slice(last), parent);
  }

  // mrkdwn text as a block of lines: ```pre```, > quotes, and inline formatting.
  function mrkdwn(text, names) {
    const root = el("div", "mrkdwn");
    const parts = String(text || "").split("```");
    parts.forEach((part, index) => {
      if (index % 2 === 1) {
        root.appendChild(el("pre", "pre", unescape(part.replace(/^\n/, ""))));
        return;
      }
      let quote = null;
      part.split("\n").forEach((line, lineIndex, lines) => {
        const quoted = /^(&gt;|>) ?/.exec(line);
        const target = quoted ? (quote ||= root.appendChild(el("blockquote"))) : root;
        if (!quoted) quote = null;
        const row = el("span", "line");
        inline(quoted ? line.slice(quoted[0].length) : line, row, names);
        target.appendChild(row);
        if (lineIndex < lines.length - 1) target.appendChild(el("br"));
      });
    });
    return root;
  }

  function textObject(object, names) {
    if (!object) return el("span");
    if (object.type === "mrkdwn") return mrkdwn(object.text, names);
    return el("div", "plain", object.text);
  }

  function button(element, onAction, blockId) {
    const node = el("button", "btn", element.text && element.text.text);
    if (element.style === "primary" || element.style === "danger") {
      node.classList.add("btn-" + element.style);
    }
    node.type = "button";
    node.dataset.actionId = element.action_id || "";
    node.addEventListener("click", () =>
      onAction({ action_id: element.action_id || "", value: element.value || "", block_id: blockId }),
    );
    return node;
  }

  function section(block, ctx) {
    const node = el("div", "block section");
    if (block.text) node.appendChild(textObject(block.text, ctx.names));
    if (block.fields && block.fields.length) {
      const fields = node.appendChild(el("div", "fields"));
      block.fields.forEach((field) => fields.appendChild(textObject(field, ctx.names)));
    }
    if (block.accessory && block.accessory.type === "button" && ctx.onAction) {
      node.appendChild(button(block.accessory, ctx.onAction, block.block_id || ""));
    }
    return node;
  }

  function context(block, ctx) {
    const node = el("div", "block context");
    (block.elements || []).forEach((element) => {
      if (element.type === "image") node.appendChild(el("span", "alt", element.alt_text));
      else node.appendChild(textObject(element, ctx.names));
    });
    return node;
  }

  function actions(block, ctx) {
    const node = el("div", "block actions");
    (block.elements || []).forEach((element) => {
      if (element.type === "button" && ctx.onAction) {
        node.appendChild(button(element, ctx.onAction, block.block_id || ""));
      } else if (element.text) {
        node.appendChild(el("span", "plain", element.text.text));
      }
    });
    return node;
  }

  function fallback(block, ctx) {
    // A block this page does not know: its text, if it has one, as Slack's clients do.
    if (block.text && typeof block.text.text === "string") {
      const node = el("div", "block unknown");
      node.appendChild(textObject(block.text, ctx.names));
      return node;
    }
    return null;
  }

  const RENDERERS = {
    header: (block) => el("h3", "block header", block.text && block.text.text),
    section,
    context,
    divider: () => el("hr", "block divider"),
    actions,
    image: (block) => el("div", "block image alt", block.alt_text),
  };

  // blocks → a node; ctx = {names, onAction(action), input(block) for modal inputs}.
  function render(blocks, ctx) {
    const root = el("div", "blocks");
    (blocks || []).forEach((block) => {
      let node;
      if (block.type === "input" && ctx.input) node = ctx.input(block);
      else node = (RENDERERS[block.type] || fallback)(block, ctx);
      if (node) root.appendChild(node);
    });
    return root;
  }

  return { render, mrkdwn, el };
})();
