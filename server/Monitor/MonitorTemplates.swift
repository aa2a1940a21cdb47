import Mustache

/// The monitoring page's templates (Mustache, rendered on the server; `{{value}}` escapes HTML by
/// Unicode scalar, ``ScalarHTMLContentType``). Each renders a ``MonitorPages/Frame``: the header
/// reads its title and who is logged in, the body its content, one of ``MonitorPages``' types.
/// Plain HTML and one style sheet: every page reads the same without JavaScript.
enum MonitorTemplates {
    /// The templates, parsed once.
    static let library: MustacheLibrary = {
        MustacheContentTypes.register(ScalarHTMLContentType(), named: ScalarHTMLContentType.name)
        var library = MustacheLibrary()
        for (name, text) in templates {
            // Every template, partials included (a partial starts over with the library's own
            // escaping), escapes by Unicode scalar. The templates are this file's constants: a
            // parse error is a bug the tests catch.
            try! library.register("{{% CONTENT_TYPE: \(ScalarHTMLContentType.name) }}\n" + text, named: name)
        }
        return library
    }()

    static let templates: [String: String] = [
        "head": head, "foot": foot, "login": login, "overview": overview, "site": site, "conflict": conflict, "error": error,
    ]

    static let head = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>{{title}} · SiteSync monitor</title>
        <style>
        body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1d2430; background: #f5f6f8; }
        header { background: #1f3a5f; color: #fff; padding: 10px 24px; display: flex; align-items: center; gap: 24px; }
        header a { color: #fff; text-decoration: none; font-weight: 600; }
        header .who { margin-left: auto; font-size: 13px; opacity: .9; }
        header form { display: inline; }
        header button { background: transparent; color: #fff; border: 1px solid #fff8; border-radius: 4px; padding: 3px 10px; cursor: pointer; }
        main { max-width: 1100px; margin: 0 auto; padding: 16px 24px 40px; }
        h1 { font-size: 22px; margin: 8px 0 16px; }
        h2 { font-size: 17px; margin: 28px 0 8px; }
        table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid #d9dee5; }
        th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e7eaef; vertical-align: top; }
        th { background: #eef1f5; font-weight: 600; font-size: 13px; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .stale { color: #a3261d; font-weight: 600; }
        .tag { display: inline-block; border-radius: 3px; padding: 0 6px; font-size: 12px; font-weight: 600; margin-right: 4px; }
        .tag.alert { background: #fbe3e1; color: #8a1f17; }
        .tag.ok { background: #e3f4e6; color: #1e6a2f; }
        .muted { color: #66707d; }
        .sides { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; }
        .side { background: #fff; border: 1px solid #d9dee5; padding: 12px 16px; }
        .side h3 { margin: 0 0 8px; font-size: 15px; }
        .value { font-family: ui-monospace, Menlo, Consolas, monospace; background: #f2f4f7; padding: 2px 6px; white-space: pre-wrap; word-break: break-word; }
        .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(240px, 1fr)); gap: 12px; }
        .card { background: #fff; border: 1px solid #d9dee5; padding: 12px 16px; }
        .card a { font-weight: 600; font-size: 17px; }
        .login { max-width: 420px; margin: 60px auto; background: #fff; border: 1px solid #d9dee5; padding: 24px; }
        .login input { width: 100%; box-sizing: border-box; padding: 8px; font: inherit; margin: 8px 0 16px; }
        .login button { padding: 8px 16px; font: inherit; }
        .error { color: #a3261d; }
        svg text { font: 11px system-ui, sans-serif; fill: #66707d; }
        </style>
        </head>
        <body>
        <header>
        <a href="/monitor">SiteSync monitor</a>
        {{#who}}<span class="who">{{who}} <form method="post" action="/monitor/logout"><button type="submit">Log out</button></form></span>{{/who}}
        </header>
        <main>
        """

    static let foot = """
        </main>
        </body>
        </html>
        """

    static let login = """
        {{> head}}
        {{#content}}
        <form class="login" method="post" action="/monitor/login">
        <h1>Log in</h1>
        <p class="muted">Monitors and data managers sign in with their username and password; a session cookie keeps you signed in for {{hours}} hours.</p>
        {{#problem}}<p class="error" role="alert">{{problem}}</p>{{/problem}}
        <label for="username">Username</label>
        <input id="username" name="username" type="text" autocomplete="username" autocapitalize="none" spellcheck="false">
        <label for="password">Password</label>
        <input id="password" name="password" type="password" autocomplete="current-password">
        <p class="muted">Or paste a reviewer or monitor token from <code>sitesync-server token create</code>:</p>
        <label for="token">Token</label>
        <input id="token" name="token" type="password" autocomplete="off">
        <input type="hidden" name="csrf" value="{{csrf}}">
        <button type="submit">Log in</button>
        </form>
        {{/content}}
        {{> foot}}
        """

    static let overview = """
        {{> head}}
        {{#content}}
        <h1>Sites</h1>
        <p class="muted">As of {{now}} (UTC). A laptop is stale after {{staleAfter}} without a completed sync.</p>
        <div class="cards">
        {{#sites}}
        <div class="card">
        <a href="/monitor/sites/{{site}}">{{site}}</a>
        <p>{{laptops}} laptop(s){{#stale}}, <span class="stale">{{stale}} stale</span>{{/stale}}<br>
        {{openConflicts}} open conflict(s)<br>
        <span class="muted">Last sync: {{lastSync}}</span></p>
        </div>
        {{/sites}}
        {{^sites}}<p>No site has records or laptops yet.</p>{{/sites}}
        </div>
        {{/content}}
        {{> foot}}
        """

    static let site = """
        {{> head}}
        {{#content}}
        <p><a href="/monitor">Sites</a> ›</p>
        <h1>Site {{site}}</h1>
        <h2>Laptops</h2>
        <table>
        <tr><th>Replica</th><th>User</th><th>Last sync</th><th>Age</th><th class="num">Pending</th><th>Build</th><th>Schema</th><th class="num">Clock offset</th></tr>
        {{#laptops}}
        <tr><td>{{replica}}</td><td>{{user}}</td><td>{{lastSync}}</td><td>{{#stale}}<span class="stale">{{age}} · stale</span>{{/stale}}{{^stale}}{{age}}{{/stale}}</td><td class="num">{{pending}}</td><td>{{build}}</td><td>{{schema}}</td><td class="num">{{clockOffset}}</td></tr>
        {{/laptops}}
        {{^laptops}}<tr><td colspan="8" class="muted">No laptop is enrolled for this site.</td></tr>{{/laptops}}
        </table>
        <h2>Open conflicts ({{openConflictCount}})</h2>
        <table>
        <tr><th>Record</th><th>Field</th><th>Kept</th><th>Overwritten</th><th>Detected</th></tr>
        {{#conflicts}}
        <tr><td><a href="/monitor/conflicts/{{id}}">{{table}} {{recordID}}</a></td><td>{{field}}</td><td><span class="value">{{winner}}</span> <span class="muted">{{winnerUser}}</span></td><td><span class="value">{{loser}}</span> <span class="muted">{{loserUser}}</span></td><td>{{detectedAt}}</td></tr>
        {{/conflicts}}
        {{^conflicts}}<tr><td colspan="5" class="muted">No open conflict.</td></tr>{{/conflicts}}
        </table>
        {{#moreConflicts}}<p class="muted">Showing the first {{shownConflicts}}; <code>sitesync conflicts list</code> on a reviewer's laptop lists them all.</p>{{/moreConflicts}}
        <h2>Adverse events for review</h2>
        <table>
        <tr><th>Subject</th><th>Event</th><th>Onset</th><th>Flags</th></tr>
        {{#alerts}}
        <tr><td>{{subject}}</td><td>{{title}} <span class="muted">({{id}})</span></td><td>{{date}}</td><td>{{#flags}}<span class="tag alert">{{.}}</span>{{/flags}}</td></tr>
        {{/alerts}}
        {{^alerts}}<tr><td colspan="4" class="muted">No adverse event is a DLT candidate or due for SRC review.</td></tr>{{/alerts}}
        </table>
        <h2>Records</h2>
        <table>
        <tr><th>Table</th><th class="num">Records</th></tr>
        {{#tables}}<tr><td>{{name}}</td><td class="num">{{count}}</td></tr>{{/tables}}
        </table>
        <h2>Changes received per day</h2>
        {{{chart}}}
        {{/content}}
        {{> foot}}
        """

    static let conflict = """
        {{> head}}
        {{#content}}
        <p><a href="/monitor">Sites</a> › <a href="/monitor/sites/{{site}}">{{site}}</a> ›</p>
        <h1>Conflict on {{table}} {{recordID}}, field {{field}}</h1>
        <p>Status: {{#open}}<span class="tag alert">open</span>{{/open}}{{^open}}<span class="tag ok">resolved</span>{{/open}} · detected {{detectedAt}} · conflict {{id}}</p>
        <p>Current value: <span class="value">{{current}}</span></p>
        <div class="sides">
        <section class="side"><h3>Kept</h3>
        <p><span class="value">{{winner.value}}</span></p>
        <p>By {{winner.user}} on replica {{winner.replica}}<br><span class="muted">Written {{winner.time}}</span></p></section>
        <section class="side"><h3>Overwritten</h3>
        <p><span class="value">{{loser.value}}</span></p>
        <p>By {{loser.user}} on replica {{loser.replica}}<br><span class="muted">Written {{loser.time}}</span></p></section>
        </div>
        {{#resolution}}<h2>Resolution</h2><p>{{decision}} by {{reviewer}} at {{resolvedAt}}: {{reason}}</p>{{/resolution}}
        {{#open}}<p class="muted">A data manager resolves it with <code>sitesync conflicts resolve {{id}}</code>.</p>{{/open}}
        {{/content}}
        {{> foot}}
        """

    static let error = """
        {{> head}}
        {{#content}}
        <h1>{{title}}</h1>
        <p>{{message}}</p>
        <p><a href="/monitor">Back to the sites</a></p>
        {{/content}}
        {{> foot}}
        """
}
