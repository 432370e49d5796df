// xfr report: sorting and filtering of the pair index, the heatmap opacity slider.
// Plain JavaScript, no library; the pages are complete without it.
(function () {
  "use strict";

  function num(row, key) {
    var v = row.dataset[key];
    return v === undefined || v === "" ? NaN : parseFloat(v);
  }

  function setupIndex() {
    var table = document.getElementById("pairs");
    if (!table) { return; }
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var filter = document.getElementById("filter");
    var sort = document.getElementById("sort");
    var search = document.getElementById("search");
    var shown = document.getElementById("shown");

    function keep(row) {
      var f = filter.value;
      var text = (search.value || "").toLowerCase();
      if (text && (row.dataset.name + " " + row.dataset.strategy).toLowerCase().indexOf(text) < 0) {
        return false;
      }
      if (f === "wrong") { return row.dataset.correct === "false"; }
      if (f === "right") { return row.dataset.correct === "true"; }
      if (f === "positive" || f === "negative") { return row.dataset.decision === f; }
      if (f === "failed") { return row.dataset.status !== "ok"; }
      return true;
    }

    function compare(a, b) {
      var parts = sort.value.split("-");
      var key = parts[0];
      var sign = parts[1] === "desc" ? -1 : 1;
      if (key === "name") {
        return sign * a.dataset.name.localeCompare(b.dataset.name);
      }
      var x = num(a, key), y = num(b, key);
      if (isNaN(x) && isNaN(y)) { return num(a, "order") - num(b, "order"); }
      if (isNaN(x)) { return 1; }   // pairs without the value go last
      if (isNaN(y)) { return -1; }
      return sign * (x - y) || num(a, "order") - num(b, "order");
    }

    function update() {
      var sorted = rows.slice().sort(compare);
      var count = 0;
      sorted.forEach(function (row) {
        var on = keep(row);
        row.hidden = !on;
        if (on) { count += 1; }
        body.appendChild(row);
      });
      shown.textContent = count + " of " + rows.length + " shown";
    }

    filter.addEventListener("change", update);
    sort.addEventListener("change", update);
    search.addEventListener("input", update);
    Array.prototype.forEach.call(table.querySelectorAll("th button[data-sort]"), function (b) {
      b.addEventListener("click", function () {
        var key = b.dataset.sort;
        var asc = key === "order" ? "order" : key + "-asc";
        var desc = key + "-desc";
        sort.value = sort.value === asc && key !== "order" ? desc : asc;
        update();
      });
    });
    var initial = new URLSearchParams(window.location.search);
    if (initial.get("filter")) { filter.value = initial.get("filter"); }
    if (initial.get("sort")) { sort.value = initial.get("sort"); }
    update();
  }

  function setupSlider() {
    var slider = document.getElementById("opacity");
    if (!slider) { return; }
    var out = document.getElementById("opacity-value");
    function apply() {
      var v = parseInt(slider.value, 10) / 100;
      Array.prototype.forEach.call(document.querySelectorAll(".overlay img.heat"), function (img) {
        img.style.opacity = String(v);
      });
      if (out) { out.textContent = slider.value + " %"; }
    }
    slider.addEventListener("input", apply);
    apply();
  }

  setupIndex();
  setupSlider();
}());
