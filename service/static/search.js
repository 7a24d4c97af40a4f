// zhsearch: progressive enhancement for the search page. Everything works without it;
// with it, the query box suggests words as you type (an ARIA 1.2 combobox) and the
// results can be walked with the keyboard. No framework, no inline script (CSP).
(function () {
  "use strict";

  var DEBOUNCE_MS = 120;

  function isTyping(el) {
    if (!el) return false;
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  // ---- Suggestions: combobox + listbox --------------------------------------------------

  // The word being completed: the last one of the query, without a leading - or title:/body:
  // (what the server's /api/suggest completes).
  function lastWord(q) {
    var words = q.split(/\s+/);
    return words[words.length - 1].replace(/^(?:-|(?:title|body):)/, "");
  }

  // An English word: Latin letters with at least one capital (pinyin is typed in lower case).
  function isEnglish(word) {
    return /^[A-Za-z]+$/.test(word) && /[A-Z]/.test(word);
  }

  // "Lin" is the start of an English word: 灵巧 (ling qiao) only sounds like it.
  function fitsTyped(item, word) {
    return !(isEnglish(word) && item.pinyin && !startsWithIgnoringCase(item.text, word));
  }

  function startsWithIgnoringCase(text, word) {
    return word !== "" && text.slice(0, word.length).toLowerCase() === word.toLowerCase();
  }

  // The index folds case, so the server may answer "ernie" or "kubernetes" for "ERN" or "Kub".
  // Text the server gives with capitals is kept as it is; a lower-case completion of what was
  // typed keeps the typed letters, and an all-capitals word (two letters or more) stays in
  // capitals up to the end of its run of letters: ERN → ERNIE, GPT → GPT-4o, Kub → Kubernetes.
  function casedLike(text, word) {
    if (text !== text.toLowerCase() || !startsWithIgnoringCase(text, word)) return text;
    var rest = text.slice(word.length);
    var letters = /[A-Za-z]/.test(word) && word.replace(/[^A-Za-z]/g, "");
    if (letters && letters.length >= 2 && letters === letters.toUpperCase()) {
      rest = rest.replace(/^[a-z]+/, function (run) {
        return run.toUpperCase();
      });
    }
    return word + rest;
  }

  function withTypedCase(item, word) {
    var text = casedLike(item.text, word);
    if (text === item.text) return item;
    var query = item.query || item.text;
    if (query.slice(-item.text.length) === item.text) {
      query = query.slice(0, query.length - item.text.length) + text;
    }
    return { text: text, pinyin: item.pinyin, documents: item.documents, query: query };
  }

  function setUpSuggest(input) {
    var url = input.getAttribute("data-suggest-url");
    var form = input.form;
    if (!url || !form || !window.fetch) return;

    var list = document.createElement("ul");
    list.id = "q-suggestions";
    list.className = "suggestions";
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "搜索建议");
    list.hidden = true;
    input.parentNode.appendChild(list);

    var status = document.createElement("div");
    status.className = "visually-hidden";
    status.setAttribute("role", "status");
    status.setAttribute("aria-live", "polite");
    input.parentNode.appendChild(status);

    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", list.id);
    input.setAttribute("aria-haspopup", "listbox");

    var items = [];
    var active = -1;
    var timer = 0;
    var controller = null;
    var lastAsked = null;
    // Every request gets the next number; only the answer to the latest one is shown, so a slow
    // answer can never replace a newer one, even when the text has come back to what it was.
    var seq = 0;
    // An input method (pinyin, zhuyin...) is composing: the box holds letters, not the query yet.
    var composing = false;

    function options() {
      return list.querySelectorAll("[role=option]");
    }

    function close() {
      list.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function highlight(index) {
      var opts = options();
      if (!opts.length) return;
      active = (index + opts.length) % opts.length;
      for (var i = 0; i < opts.length; i++) {
        opts[i].setAttribute("aria-selected", i === active ? "true" : "false");
      }
      input.setAttribute("aria-activedescendant", opts[active].id);
      opts[active].scrollIntoView({ block: "nearest" });
    }

    function choose(index) {
      var item = items[index];
      if (!item) return;
      input.value = item.query;
      close();
      form.submit();
    }

    function render(data, q) {
      var word = lastWord(q);
      items = (data.suggestions || [])
        .filter(function (item) {
          return fitsTyped(item, word);
        })
        .map(function (item) {
          return withTypedCase(item, word);
        });
      list.textContent = "";
      list.setAttribute("data-query", q); // which input these are for (tests wait on it)
      active = -1;
      input.removeAttribute("aria-activedescendant");
      items.forEach(function (item, i) {
        var li = document.createElement("li");
        li.id = "q-suggestion-" + i;
        li.setAttribute("role", "option");
        li.setAttribute("aria-selected", "false");
        var text = document.createElement("span");
        text.className = "text";
        text.textContent = item.text; // textContent: suggestions are data, never markup
        li.appendChild(text);
        var extra = document.createElement("span");
        extra.className = "n";
        extra.textContent = (item.pinyin ? item.pinyin + " · " : "") + item.documents + " 篇";
        li.appendChild(extra);
        li.addEventListener("mousedown", function (event) {
          event.preventDefault(); // keep focus in the box
          choose(i);
        });
        list.appendChild(li);
      });
      if (items.length && document.activeElement === input) {
        list.hidden = false;
        input.setAttribute("aria-expanded", "true");
        status.textContent = items.length + " 条建议，用上下方向键选择";
      } else {
        close();
        status.textContent = "";
      }
    }

    function ask() {
      if (composing) return;
      var q = input.value;
      if (q === lastAsked) return;
      lastAsked = q;
      var mine = ++seq;
      if (controller) controller.abort();
      controller = null;
      if (!q.trim()) {
        render({ suggestions: [] }, q);
        return;
      }
      controller = window.AbortController ? new AbortController() : null;
      fetch(url + "?q=" + encodeURIComponent(q), {
        headers: { Accept: "application/json" },
        signal: controller ? controller.signal : undefined,
      })
        .then(function (resp) {
          return resp.ok ? resp.json() : { suggestions: [] };
        })
        .then(function (data) {
          if (mine === seq && input.value === q && !composing) render(data, q);
        })
        .catch(function () {
          /* aborted or offline: keep the box working as a plain input */
        });
    }

    function schedule() {
      clearTimeout(timer);
      timer = setTimeout(ask, DEBOUNCE_MS);
    }

    input.addEventListener("input", function (event) {
      // While an input method composes, the box holds pinyin the user has not chosen yet.
      if (composing || event.isComposing) return;
      schedule();
    });

    input.addEventListener("compositionstart", function () {
      composing = true;
      clearTimeout(timer);
      lastAsked = null; // an answer arriving meanwhile is dropped: ask again when composition ends
      close(); // the list is for the text before; the input method shows its own candidates
    });

    input.addEventListener("compositionend", function () {
      composing = false;
      schedule(); // ask once, for the words the input method produced
    });

    input.addEventListener("keydown", function (event) {
      // Keys pressed while composing (Enter picks a candidate, Escape cancels) belong to the input method.
      if (composing || event.isComposing || event.keyCode === 229) return;
      var open = !list.hidden;
      switch (event.key) {
        case "ArrowDown":
          if (!items.length) return;
          event.preventDefault();
          if (!open) {
            list.hidden = false;
            input.setAttribute("aria-expanded", "true");
          }
          highlight(active + 1);
          break;
        case "ArrowUp":
          if (!open || !items.length) return;
          event.preventDefault();
          highlight(active - 1);
          break;
        case "Enter":
          if (open && active >= 0) {
            event.preventDefault();
            choose(active);
          }
          break;
        case "Escape":
          // The first Escape closes the list; the next one does nothing, where a type=search
          // box would clear the text: what was typed is kept either way.
          event.preventDefault();
          if (open) close();
          break;
        case "Tab":
          close();
          break;
      }
    });

    input.addEventListener("blur", function () {
      close();
    });
  }

  // ---- Results: j/k and arrow keys, "/" to search -----------------------------------------

  function setUpResults(input) {
    var hits = Array.prototype.slice.call(document.querySelectorAll("ol.hits > li.hit"));

    function target(hit) {
      return hit.querySelector(".title a, .title .nolink");
    }

    function current() {
      var el = document.activeElement;
      var hit = el && el.closest ? el.closest("li.hit") : null;
      return hits.indexOf(hit);
    }

    function go(index) {
      if (!hits.length) return;
      index = Math.max(0, Math.min(hits.length - 1, index));
      var el = target(hits[index]);
      if (el) el.focus();
    }

    hits.forEach(function (hit) {
      hit.addEventListener("focusin", function () {
        hit.classList.add("current");
      });
      hit.addEventListener("focusout", function () {
        hit.classList.remove("current");
      });
    });

    document.addEventListener("keydown", function (event) {
      if (event.altKey || event.ctrlKey || event.metaKey || event.defaultPrevented) return;
      if (isTyping(event.target)) return;
      var at = current();
      var key = event.key;
      if (key === "/" && input) {
        event.preventDefault();
        input.focus();
        input.select();
      } else if (key === "j" || (key === "ArrowDown" && at >= 0)) {
        event.preventDefault();
        go(at + 1);
      } else if (key === "k" || (key === "ArrowUp" && at >= 0)) {
        event.preventDefault();
        go(at < 0 ? 0 : at - 1);
      }
    });
  }

  function init() {
    var input = document.getElementById("q");
    if (input) setUpSuggest(input);
    setUpResults(input);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
