/**
 * The live dashboard: one self-contained page (no external scripts, fonts or styles, so it works
 * on an air-gapped admin port) that polls /api/state every second and draws, per upstream, its
 * state, limit, in-flight, latency and successes over the last minutes as inline SVG charts.
 */
export const DASHBOARD_HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Cirrus gateway</title>
<meta name="viewport" content="width=device-width,initial-scale=1">
<style>
body{font:14px system-ui,sans-serif;margin:0;background:#0f1419;color:#d8dee9}
header{padding:12px 20px;background:#1b222c;display:flex;gap:24px;align-items:baseline;flex-wrap:wrap}
h1{font-size:18px;margin:0}
.kv span{color:#8fa1b3;margin-right:4px}
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(420px,1fr));gap:14px;padding:14px}
.card{background:#1b222c;border-radius:8px;padding:12px 14px}
.card h2{font-size:15px;margin:0 0 8px;display:flex;justify-content:space-between}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;color:#0f1419}
.healthy{background:#a3be8c}.probing{background:#ebcb8b}.ejected{background:#bf616a}
.stats{display:grid;grid-template-columns:repeat(4,1fr);gap:6px;margin-bottom:8px}
.stats div{background:#232b36;border-radius:4px;padding:4px 6px}.stats b{display:block;font-size:16px}
.stats small{color:#8fa1b3}
svg{width:100%;height:70px;background:#151b22;border-radius:4px;margin-top:4px}
.legend{font-size:11px;color:#8fa1b3}
.err{color:#bf616a;padding:20px}
</style></head><body>
<header><h1>Cirrus gateway</h1><div class="kv" id="summary"></div></header>
<main id="cards"></main>
<script>
"use strict";
const W = 400, H = 70;
function esc(s){return String(s).replace(/[&<>"]/g,c=>({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"}[c]));}
function path(values, max, color){
  if (values.length < 2) return "";
  const step = W / Math.max(values.length - 1, 1);
  const pts = values.map((v, i) => (i * step).toFixed(1) + "," + (H - 2 - (v / (max || 1)) * (H - 6)).toFixed(1));
  return '<polyline fill="none" stroke="' + color + '" stroke-width="1.5" points="' + pts.join(" ") + '"/>';
}
function chart(series){
  let max = 0;
  for (const s of series) for (const v of s.values) if (v > max) max = v;
  return '<svg viewBox="0 0 ' + W + ' ' + H + '" preserveAspectRatio="none">' +
    series.map(s => path(s.values, max, s.color)).join("") + '</svg>' +
    '<div class="legend">' + series.map(s => '<span style="color:' + s.color + '">&#9632; ' + esc(s.name) + '</span>').join(" &nbsp; ") +
    ' &nbsp; max ' + max.toFixed(max < 10 ? 1 : 0) + '</div>';
}
function card(u){
  const h = u.history;
  const rate = u.window.total ? (100 * u.window.ok / u.window.total).toFixed(1) + "%" : "-";
  return '<div class="card"><h2><span>' + esc(u.origin) + '</span><span class="badge ' + u.state + '">' + u.state +
    (u.state === "ejected" ? " " + (u.msUntilProbe / 1000).toFixed(1) + "s" : "") + '</span></h2>' +
    '<div class="stats">' +
    '<div><small>limit</small><b>' + u.limit + '</b></div>' +
    '<div><small>in-flight</small><b>' + u.inflight + '</b></div>' +
    '<div><small>p99 ms</small><b>' + u.p99Ms.toFixed(1) + '</b></div>' +
    '<div><small>success 10s</small><b>' + rate + '</b></div></div>' +
    chart([{name:"ok/s",color:"#a3be8c",values:h.map(p=>p.ok)},{name:"failed/s",color:"#bf616a",values:h.map(p=>p.failed)}]) +
    chart([{name:"limit",color:"#88c0d0",values:h.map(p=>p.limit)},{name:"in-flight",color:"#ebcb8b",values:h.map(p=>p.inflight)}]) +
    chart([{name:"p99 ms",color:"#b48ead",values:h.map(p=>p.p99Ms)}]) +
    '</div>';
}
async function tick(){
  try {
    const r = await fetch("api/state", {cache: "no-store"});
    const s = await r.json();
    const g = s.gateway;
    document.getElementById("summary").innerHTML =
      '<span>listening</span>' + esc(g.url) + ' &nbsp; <span>active</span>' + g.active +
      ' &nbsp; <span>queued</span>' + g.queueLength + ' &nbsp; <span>retry tokens</span>' + g.retryTokens.toFixed(0) +
      ' &nbsp; <span>uptime</span>' + g.uptimeS.toFixed(0) + 's';
    document.getElementById("cards").innerHTML = s.upstreams.map(card).join("");
  } catch (e) {
    document.getElementById("cards").innerHTML = '<div class="err">cannot reach the gateway: ' + esc(e) + '</div>';
  }
}
tick(); setInterval(tick, 1000);
</script></body></html>
`;
