// Shows each <time datetime="..."> of the page in the browser's own zone; the HTML
// carries the time in UTC, which stays in the title for reference.
document.addEventListener("DOMContentLoaded", function () {
  var times = document.querySelectorAll("time[datetime]");
  for (var i = 0; i < times.length; i++) {
    var el = times[i];
    var at = new Date(el.getAttribute("datetime"));
    if (isNaN(at.getTime())) continue;
    el.title = el.textContent;
    el.textContent = at.toLocaleString();
  }
});
