// SPDX-License-Identifier: MIT
// console.mjs -- browser tests of the operator console (GET /admin) and of the waiting page's
// brand and languages, registered into e2e.mjs's run (same server, worker and Chromium).
// Screenshots: console-*.png and wait-*.png in tests/artifacts/.
import path from "node:path";

// Registers the tests with test(name, fn); h holds e2e.mjs's helpers and settings.
export function registerConsoleTests(test, h) {
    const { http, check, equal, waitFor, sleep, ADMIN_TOKEN, ARTIFACTS, STEP_MS } = h;
    const shot = (page, name, fullPage = true) => page.screenshot({ path: path.join(ARTIFACTS, name), fullPage });

    // A new business (operator key) with conf; returns its admin key.
    async function business(id, conf) {
        const r = await http(
            "POST",
            `${h.gk()}/businesses`,
            { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
            JSON.stringify({ business_id: id })
        );
        check(r.status === 201 || r.status === 409, `create ${id}: ${r.status} ${r.text}`);
        await h.configure(id, conf);
        return r.json && r.json.admin_key;
    }

    async function getConfig(id) {
        const r = await http("GET", `${h.gk()}/config`, { "business-id": id, Authorization: `Bearer ${ADMIN_TOKEN}` });
        equal(r.status, 200, `config ${id}`);
        return r.json.updated_config;
    }

    test("console: a wrong key is refused; signed in, numbers and charts move while visitors join; actions and config round-trip", async (ctx) => {
        const biz = "e2e-console";
        const key = await business(biz, {
            admission_frequency: 1,
            admission_limit: 1,
            ip_enqueue_limit: 1000000,
            ip_status_polling_limit: 1000000,
        });
        // The load: a new visitor every 100 ms for the whole test.
        let joined = 0;
        let loading = true;
        const load = (async () => {
            while (loading) {
                await http("POST", `${h.gk()}/queue/enqueue`, { "business-id": biz, "user-id": `load-${joined++}` });
                await sleep(100);
            }
        })();
        const context = await ctx.browser.newContext({ viewport: { width: 1280, height: 900 } });
        const page = (ctx.page = await context.newPage());
        page.on("dialog", (d) => d.accept());
        try {
            await page.goto(`${h.gk()}/admin`);
            await page.fill("#in-business", biz);
            await page.fill("#in-key", "not-the-key");
            await page.click("#signin-form button");
            await page.waitForFunction(() => document.getElementById("signin-error").textContent.includes("Wrong key"));
            check(await page.isHidden("#app"), "a wrong key shows nothing");
            equal(await page.evaluate(() => sessionStorage.getItem("gatekeeper-console")), null, "no key kept");
            await shot(page, "console-refused.png");

            await page.fill("#in-key", key);
            await page.click("#signin-form button");
            await page.waitForSelector("#app:not([hidden])");
            const stored = await page.evaluate(() => JSON.parse(sessionStorage.getItem("gatekeeper-console")));
            equal(stored.key, key, "the key is in sessionStorage");
            equal(await page.evaluate(() => localStorage.length), 0, "nothing in localStorage");

            // Numbers move: the enqueued total grows between refreshes.
            const num = (id) => page.evaluate((i) => Number(document.getElementById(i).textContent.replace(/\D/g, "")), id);
            await page.waitForFunction(() => /\d/.test(document.getElementById("n-enqueued").textContent));
            const first = await num("n-enqueued");
            await page.waitForFunction(
                (f) => Number(document.getElementById("n-enqueued").textContent.replace(/\D/g, "")) > f,
                first,
                { timeout: STEP_MS }
            );
            check((await num("n-admitted")) >= 1, "admissions are shown");
            // Charts move: the worker writes a point per 10 s; two points draw a line.
            await page.waitForFunction(() => Number(document.getElementById("chart-waiting").dataset.points || 0) >= 2, null, {
                timeout: 35000,
            });
            check(await page.isVisible("#chart-admitted polyline"), "the admitted chart is drawn");
            await shot(page, "console-live.png");

            // A config change round-trips, and a refused value is shown by its field.
            await page.fill("#f-max_active_users", "7");
            await page.fill("#f-page-title", "Console sale");
            await page.click("#config-save");
            await page.waitForFunction(() => document.getElementById("config-msg").textContent === "Saved.");
            let conf = await getConfig(biz);
            equal(conf.max_active_users, 7, "max_active_users saved");
            equal(conf.page.title, "Console sale", "page.title saved");
            equal(await page.textContent("#n-cap"), "7", "the cap tile follows");
            await page.fill("#f-page-logo_url", "http://not-https.example/logo.png");
            await page.click("#config-save");
            await page.waitForFunction(() => document.getElementById("f-page-logo_url-err").textContent.includes("https"));
            equal((await getConfig(biz)).page.logo_url, "", "a refused value changes nothing");

            // Pause, resume, open the gates, close the queue (each confirmed), back to fifo.
            await page.click("#act-pause");
            await page.waitForFunction(() => document.getElementById("state").textContent === "paused");
            equal((await getConfig(biz)).admission_paused, true, "paused");
            await page.click("#act-pause");
            await page.waitForFunction(() => document.getElementById("state").textContent === "fifo");
            await page.click("#act-open");
            await page.waitForFunction(() => document.getElementById("state").textContent === "passthrough");
            await page.click("#act-close");
            await page.waitForFunction(() => document.getElementById("state").textContent === "reject");
            conf = await getConfig(biz);
            equal(conf.queueing_method, "reject", "closed");
            await page.click("#act-fifo");
            await page.waitForFunction(() => document.getElementById("state").textContent === "fifo");

            // The activity log, page by page.
            await page.click("#activity-newest");
            await waitFor("activity rows", async () => (await page.$$("#activity-rows tr")).length > 0);
            if (!(await page.isDisabled("#activity-older"))) {
                const before = await page.textContent("#activity-rows tr:first-child");
                await page.click("#activity-older");
                await page.waitForFunction((b) => document.querySelector("#activity-rows tr:first-child").textContent !== b, before);
                check(!(await page.isDisabled("#activity-newer")), "a way back to newer rows");
                await page.click("#activity-newer");
                await page.waitForFunction(() => document.getElementById("activity-newer").disabled);
            }

            await page.setViewportSize({ width: 390, height: 844 });
            await sleep(300);
            const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
            check(overflow <= 1, `the console fits a phone screen (overflow ${overflow}px)`);
            await shot(page, "console-phone.png");
        } finally {
            loading = false;
            await load;
            await context.close();
        }
    });

    test("console: an event is scheduled, listed in local time, refused by the field the server names, and cancelled", async (ctx) => {
        const biz = "e2e-console-events";
        const key = await business(biz, { admission_frequency: 3600 });
        const context = await ctx.browser.newContext({ viewport: { width: 1280, height: 900 } });
        const page = (ctx.page = await context.newPage());
        const dialogs = [];
        page.on("dialog", (d) => {
            dialogs.push(d.message());
            d.accept();
        });
        try {
            await page.goto(`${h.gk()}/admin`);
            await page.fill("#in-business", biz);
            await page.fill("#in-key", key);
            await page.click("#signin-form button");
            await page.waitForSelector("#app:not([hidden])");

            // datetime-local values in the browser's own time zone, hours from now.
            const local = (hours) =>
                page.evaluate((hrs) => {
                    const d = new Date(Date.now() + hrs * 3600000);
                    d.setMilliseconds(0);
                    const p = (n) => String(n).padStart(2, "0");
                    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
                }, hours);
            const pre = await local(1), opens = await local(2);

            // A refused field: the opening before the pre-queue; the message sits by opens_at.
            await page.fill("#ev-name", "Console launch");
            await page.fill("#ev-prequeue_opens_at", opens);
            await page.fill("#ev-opens_at", pre);
            await page.click("#event-save");
            await page.waitForFunction(() => document.getElementById("ev-opens_at-err").textContent !== "");
            equal(await page.textContent("#ev-opens_at-err"), "opens_at must come after prequeue_opens_at.", "the server's message by its field");
            // A refused override is shown by its own input.
            await page.fill("#ev-prequeue_opens_at", pre);
            await page.fill("#ev-opens_at", opens);
            await page.fill("#ev-admission_limit", "0");
            await page.click("#event-save");
            await page.waitForFunction(() => document.getElementById("ev-admission_limit-err").textContent.includes("admission_limit"));
            equal(await page.textContent("#ev-opens_at-err"), "", "the earlier message is gone");

            await page.fill("#ev-admission_limit", "50");
            await page.click("#event-save");
            await page.waitForFunction(() => document.getElementById("event-form-msg").textContent.includes("scheduled"));
            await page.waitForSelector("#event-rows tr");
            const listed = await http("GET", `${h.gk()}/events`, { "business-id": biz, Authorization: `Bearer ${key}` });
            equal(listed.status, 200, "GET /events");
            const ev = listed.json.events[0];
            equal(ev.name, "Console launch", "the event was created");
            equal(ev.config.admission_limit, 50, "with its override");
            const row = await page.evaluate(() => [...document.querySelectorAll("#event-rows tr:first-child td")].map((td) => td.textContent));
            equal(row[0], "Console launch", "listed by name");
            equal(row[1], "scheduled", "its state");
            const shown = await page.evaluate((iso) => new Date(iso).toLocaleString(), ev.opens_at);
            equal(row[3], shown, "the opening in the operator's locale");
            equal(row[6], ev.seed_commitment, "its seed commitment");
            check(/^[0-9a-f]{64}$/.test(row[6]), "a 64-hex commitment");
            equal(await page.evaluate(() => new Date(document.getElementById("ev-opens_at").value || 0).getTime()), 0, "the form is cleared");
            await shot(page, "console-events.png");

            // Cancelled after a confirmation.
            await page.click("#event-rows tr:first-child button.cancel");
            await page.waitForFunction(() => document.querySelector("#event-rows tr:first-child td:nth-child(2)").textContent === "cancelled");
            check(dialogs.some((m) => m.includes("Console launch")), "cancelling asked first");
            const after = await http("GET", `${h.gk()}/events/${ev.event_id}`, { "business-id": biz, Authorization: `Bearer ${key}` });
            equal(after.json.state, "cancelled", "the server has it cancelled");
            check(!(await page.$("#event-rows tr:first-child button.cancel")), "no cancel button on a cancelled event");
        } finally {
            await context.close();
        }
    });

    test("waiting page: translated by Accept-Language or the business's choice, branded, right-to-left in Arabic", async (ctx) => {
        const biz = "e2e-brand";
        await business(biz, {
            admission_frequency: 3600,
            admission_limit: 1,
            ip_enqueue_limit: 1000000,
            ip_status_polling_limit: 1000000,
            page: {
                title: "Brand <Sale> & Co",
                message: "Limited drop: one per customer.",
                logo_url: "https://cdn.example/logo.png",
                primary_color: "#c2185b",
                language: "auto",
            },
        });
        for (const u of ["b0", "b1"]) await http("POST", `${h.gk()}/queue/enqueue`, { "business-id": biz, "user-id": u });

        const visit = async (locale, name) => {
            const context = await ctx.browser.newContext({ locale, viewport: { width: 800, height: 900 } });
            const page = (ctx.page = await context.newPage());
            await page.goto(`${h.gk()}/wait/${biz}`);
            await page.waitForFunction(() => /\d/.test(document.getElementById("gk-position").textContent));
            const seen = await page.evaluate(() => ({
                lang: document.documentElement.lang,
                dir: document.documentElement.dir,
                direction: getComputedStyle(document.querySelector("main")).direction,
                title: document.getElementById("gk-title").textContent,
                place: document.querySelector("dt").textContent,
                leave: document.getElementById("gk-leave").textContent,
                detail: document.getElementById("gk-detail").textContent,
                brand: document.querySelector(".brand-title").textContent,
                message: document.querySelector(".brand-message").textContent,
                logo: document.querySelector(".brand img").getAttribute("src"),
                accent: getComputedStyle(document.getElementById("gk-leave")).color,
                docTitle: document.title,
            }));
            await shot(page, name);
            await context.close();
            return seen;
        };

        const fr = await visit("fr-FR", "wait-fr.png");
        equal(fr.lang, "fr", "French picked from Accept-Language");
        equal(fr.title, "Vous êtes dans la file", "French title");
        equal(fr.place, "Votre place dans la file", "French label");
        equal(fr.leave, "Quitter la file", "French button");
        check(fr.detail.startsWith("Mis à jour à"), `French time line: ${fr.detail}`);
        equal(fr.brand, "Brand <Sale> & Co", "the brand title, as text");
        equal(fr.message, "Limited drop: one per customer.", "the brand message");
        equal(fr.logo, "https://cdn.example/logo.png", "the logo");
        equal(fr.accent, "rgb(194, 24, 91)", "the brand colour");
        equal(fr.docTitle, "Brand <Sale> & Co", "the document title");

        const ja = await visit("ja-JP", "wait-ja.png");
        equal(ja.lang, "ja", "Japanese");
        equal(ja.title, "列に並んでいます", "Japanese title");
        equal(ja.place, "あなたの順番", "Japanese label");

        const ar = await visit("ar-EG", "wait-ar.png");
        equal(ar.lang, "ar", "Arabic");
        equal(ar.dir, "rtl", "<html dir>");
        equal(ar.direction, "rtl", "laid out right to left");
        equal(ar.title, "أنت في الطابور", "Arabic title");

        // The business's choice wins over the browser's.
        await h.configure(biz, { page: { language: "de", primary_color: "" } });
        const de = await visit("fr-FR", "wait-de-chosen.png");
        equal(de.lang, "de", "the business's language");
        equal(de.leave, "Warteschlange verlassen", "German button");
        check(de.accent !== "rgb(194, 24, 91)", "the default colour is back");

        // Admissions paused: a waiting visitor reads a notice in the page's language, no ETA.
        await h.configure(biz, { admission_paused: true });
        {
            const context = await ctx.browser.newContext({ locale: "fr-FR" });
            const page = (ctx.page = await context.newPage());
            await page.goto(`${h.gk()}/wait/${biz}`);
            await page.waitForSelector("#gk-paused:not([hidden])", { timeout: STEP_MS });
            equal(await page.textContent("#gk-paused"), "Der Einlass ist kurz angehalten. Ihr Platz bleibt erhalten.", "the German notice");
            equal(await page.textContent("#gk-eta"), "\u2013", "no ETA while paused");
            check(/\d/.test(await page.textContent("#gk-position")), "the place is still shown");
            await shot(page, "wait-paused-de.png");
            // Resumed: the notice goes at the next poll and the ETA is back.
            await h.configure(biz, { admission_paused: false });
            await page.waitForSelector("#gk-paused", { state: "hidden", timeout: STEP_MS });
            check((await page.textContent("#gk-eta")) !== "\u2013", "an ETA again");
            await context.close();
        }

        // The error page speaks the visitor's language too.
        const context = await ctx.browser.newContext({ locale: "es-ES" });
        const page = (ctx.page = await context.newPage());
        const res = await page.goto(`${h.gk()}/wait/no-such-room`);
        equal(res.status(), 404, "unknown business");
        equal(await page.textContent("h1"), "Esta sala de espera no existe", "Spanish error page");
        equal(await page.evaluate(() => document.documentElement.lang), "es", "its <html lang>");
        await shot(page, "wait-error-es.png");
        await context.close();
    });
}
