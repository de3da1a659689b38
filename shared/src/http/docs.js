
"use strict";
(function () {
  // The documents, in order (shared/src/http/docs.rs: DOCUMENTS).
  const DOCUMENTS = [
    ["/api/v3/openapi.json", "openapi"],
    ["/api/v3/auth/openapi.json", "openapi"],
    ["/api/v3/analytics/openapi.json", "openapi"],
    ["/api/v3/asyncapi.json", "asyncapi"],
  ];
  const METHODS = ["get", "put", "post", "patch", "delete", "head", "options", "trace"];

  // Every text goes in as a text node: nothing of a document is ever parsed as markup.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v !== undefined && v !== null) e.setAttribute(k, String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  // Appends `child` unless there is none (a part the document leaves out).
  function add(parent, child) {
    if (child) parent.appendChild(child);
  }

  // Follows a local `$ref` (`#/components/...`) of `doc`.
  function deref(doc, value) {
    let seen = 0;
    while (value && typeof value === "object" && typeof value.$ref === "string" && seen++ < 20) {
      const ref = value.$ref;
      if (!ref.startsWith("#/")) return value;
      let node = doc;
      for (const part of ref.slice(2).split("/")) {
        const key = part.replace(/~1/g, "/").replace(/~0/g, "~");
        node = node && typeof node === "object" ? node[key] : undefined;
      }
      if (node === undefined) return value;
      value = node;
    }
    return value;
  }

  // A schema's short name: its `$ref`'s last segment, or its type (arrays of it).
  function schemaName(schema) {
    if (!schema || typeof schema !== "object") return "";
    if (typeof schema.$ref === "string") return schema.$ref.split("/").pop();
    if (schema.type === "array") return schemaName(schema.items) + "[]";
    for (const k of ["oneOf", "anyOf", "allOf"]) {
      if (Array.isArray(schema[k])) return schema[k].map(schemaName).join(k === "allOf" ? " & " : " | ");
    }
    let name = Array.isArray(schema.type) ? schema.type.join(" | ") : (schema.type || "object");
    if (schema.format) name += " (" + schema.format + ")";
    if (Array.isArray(schema.enum)) name += ": " + schema.enum.map(String).join(", ");
    return name;
  }

  function description(text) {
    return text ? el("div", { class: "description" }, String(text)) : null;
  }

  function contentTable(doc, content) {
    const rows = Object.entries(content || {}).map(([type, media]) =>
      el("tr", {}, el("td", {}, el("code", {}, type)), el("td", {}, el("code", {}, schemaName((media || {}).schema)))));
    return rows.length ? el("table", {}, el("tr", {}, el("th", {}, "Content type"), el("th", {}, "Schema")), ...rows) : null;
  }

  function operation(doc, path, method, op, shared) {
    const name = method.toUpperCase();
    const summary = el("summary", {},
      el("span", { class: "method " + name }, name),
      el("span", { class: "path" + (op.deprecated ? " deprecated" : "") }, path),
      op.summary ? el("span", { class: "summary" }, String(op.summary)) : null);
    const body = el("div", {});
    if (op.operationId) add(body, el("div", {}, "Operation ", el("code", {}, String(op.operationId))));
    add(body, description(op.description));
    const params = [...(shared || []), ...(op.parameters || [])].map(p => deref(doc, p));
    if (params.length) {
      add(body, el("h4", {}, "Parameters"));
      add(body, el("table", {},
        el("tr", {}, el("th", {}, "Name"), el("th", {}, "In"), el("th", {}, "Required"), el("th", {}, "Schema"), el("th", {}, "Description")),
        ...params.map(p => el("tr", { "data-parameter": p.name },
          el("td", {}, el("code", {}, String(p.name || ""))), el("td", {}, String(p.in || "")),
          el("td", {}, p.required ? "yes" : "no"), el("td", {}, el("code", {}, schemaName(p.schema))),
          el("td", {}, String(p.description || ""))))));
    }
    const request = deref(doc, op.requestBody);
    if (request) {
      add(body, el("h4", {}, "Request body" + (request.required ? " (required)" : "")));
      add(body, description(request.description));
      add(body, contentTable(doc, request.content));
    }
    const responses = Object.entries(op.responses || {});
    if (responses.length) {
      add(body, el("h4", {}, "Responses"));
      add(body, el("table", {},
        el("tr", {}, el("th", {}, "Status"), el("th", {}, "Description"), el("th", {}, "Schema")),
        ...responses.map(([status, r]) => {
          r = deref(doc, r) || {};
          const schemas = Object.entries(r.content || {}).map(([t, m]) => t + ": " + schemaName((m || {}).schema));
          return el("tr", { "data-status": status }, el("td", {}, el("code", {}, status)),
            el("td", {}, String(r.description || "")), el("td", {}, schemas.join("; ")));
        })));
    }
    if (Array.isArray(op.security) && op.security.length) {
      add(body, el("div", {}, "Security: ",
        op.security.map(s => Object.keys(s).join(" + ") || "none").join(" or ")));
    }
    return el("details", { class: "route", "data-route": name + " " + path }, summary, body);
  }

  function openapi(doc, section) {
    const paths = Object.entries(doc.paths || {});
    add(section, el("p", {}, `${paths.length} paths` + (doc.openapi ? ` · OpenAPI ${doc.openapi}` : "")));
    for (const [path, item] of paths) {
      const resolved = deref(doc, item) || {};
      for (const method of METHODS) {
        if (resolved[method]) add(section, operation(doc, path, method, resolved[method], resolved.parameters));
      }
    }
  }

  function messageRow(doc, ref) {
    const m = deref(doc, ref) || {};
    const id = typeof (ref || {}).$ref === "string" ? ref.$ref.split("/").pop() : (m.name || "");
    return el("tr", { "data-message": id },
      el("td", {}, el("code", {}, String(m.name || id))), el("td", {}, String(m.title || m.summary || "")),
      el("td", {}, el("code", {}, schemaName(m.payload))));
  }

  function messagesTable(doc, messages) {
    const list = Array.isArray(messages) ? messages : Object.values(messages || {});
    if (!list.length) return null;
    return el("table", {}, el("tr", {}, el("th", {}, "Message"), el("th", {}, "Title"), el("th", {}, "Payload")),
      ...list.map(m => messageRow(doc, m)));
  }

  function asyncapi(doc, section) {
    const channels = Object.entries(doc.channels || {});
    add(section, el("p", {}, `${channels.length} channels` + (doc.asyncapi ? ` · AsyncAPI ${doc.asyncapi}` : "")));
    for (const [name, servers] of Object.entries(doc.servers || {})) {
      add(section, el("div", {}, "Server ", el("code", {}, name), ": ",
        el("code", {}, `${servers.protocol || ""} ${servers.host || servers.url || ""}${servers.pathname || ""}`),
        servers.description ? " — " + servers.description : ""));
    }
    add(section, el("h3", {}, "Channels"));
    for (const [name, raw] of channels) {
      const ch = deref(doc, raw) || {};
      const body = el("div", {}, description(ch.description));
      add(body, el("h4", {}, "Messages"));
      add(body, messagesTable(doc, ch.messages || (ch.publish || ch.subscribe || {}).message));
      add(section, el("details", { class: "channel", "data-channel": name, open: "" },
        el("summary", {}, el("span", { class: "path" }, String(ch.address || name)),
          ch.title ? el("span", { class: "summary" }, String(ch.title)) : null),
        body));
    }
    const operations = Object.entries(doc.operations || {});
    if (operations.length) {
      add(section, el("h3", {}, "Operations"));
      for (const [id, raw] of operations) {
        const op = deref(doc, raw) || {};
        const body = el("div", {}, description(op.description));
        add(body, messagesTable(doc, op.messages));
        if (op.reply) {
          add(body, el("h4", {}, "Reply"));
          add(body, messagesTable(doc, (deref(doc, op.reply) || {}).messages));
        }
        add(section, el("details", { class: "operation", "data-operation": id },
          el("summary", {}, el("span", { class: "method " + (op.action || "") }, String(op.action || "")),
            el("span", { class: "path" }, id), op.summary ? el("span", { class: "summary" }, String(op.summary)) : null),
          body));
      }
    }
  }

  async function render(url, kind, index) {
    const section = el("section", { class: "document", id: "doc-" + index, "data-document": url });
    const heading = el("h2", {}, url);
    add(section, heading);
    document.getElementById("docs").appendChild(section);
    const link = el("a", { href: "#doc-" + index }, url);
    document.getElementById("nav").appendChild(link);
    try {
      const r = await fetch(url, { headers: { Accept: "application/json" } });
      if (!r.ok) throw new Error(`${url} answered ${r.status}`);
      const doc = await r.json();
      const info = doc.info || {};
      heading.textContent = String(info.title || url);
      heading.appendChild(el("span", { class: "version" }, `${info.version || ""} · ${url}`));
      link.textContent = String(info.title || url);
      add(section, description(info.description));
      if (kind === "asyncapi") asyncapi(doc, section); else openapi(doc, section);
    } catch (e) {
      add(section, el("p", { class: "error" }, "Could not load " + url + ": " + e.message));
    }
  }

  document.getElementById("loading").remove();
  Promise.all(DOCUMENTS.map(([url, kind], i) => render(url, kind, i)))
    .then(() => document.body.setAttribute("data-rendered", "true"));
})();
