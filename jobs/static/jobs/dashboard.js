/* The job dashboard's charts, drawn with the vendored Chart.js from the numbers the page carries. */
"use strict";

(function () {
    const numbers = JSON.parse(document.getElementById("jobs-dashboard-data").textContent);
    const style = getComputedStyle(document.documentElement);
    const cssColor = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    const STATES = ["waiting", "delayed", "active", "completed", "failed"];
    // The badges' colours (admin.css), so a state looks the same everywhere.
    const palette = Object.fromEntries(STATES.map((state) => [state, cssColor(`--jobs-${state}`, "#888")]));

    Chart.defaults.color = cssColor("--body-quiet-color", "#666");
    Chart.defaults.borderColor = cssColor("--hairline-color", "#e8e8e8");
    Chart.defaults.font.family = cssColor("--font-family-primary", "sans-serif");
    Chart.defaults.maintainAspectRatio = false;
    // Drawn at once: what a reader (or a test) finds in the chart is what is on the screen.
    Chart.defaults.animation = false;

    function draw(id, config) {
        const canvas = document.getElementById(id);
        return canvas ? new Chart(canvas, config) : null;
    }

    // Horizontal bar charts grow with their number of bars, so long lists stay readable.
    function fitHeight(id, bars) {
        const canvas = document.getElementById(id);
        if (canvas) canvas.parentElement.style.height = `${60 + 26 * Math.max(bars, 1)}px`;
    }

    const integers = { beginAtZero: true, ticks: { precision: 0 } };

    draw("jobs-throughput", {
        type: "bar",
        data: {
            labels: numbers.throughput.labels,
            datasets: [
                { label: "completed", data: numbers.throughput.completed, backgroundColor: palette.completed },
                { label: "failed", data: numbers.throughput.failed, backgroundColor: palette.failed },
            ],
        },
        options: {
            barPercentage: 1,
            categoryPercentage: 0.9,
            scales: {
                x: { stacked: true, grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 16 } },
                y: { stacked: true, ...integers },
            },
            plugins: {
                legend: { position: "top", align: "end" },
                tooltip: { mode: "index", intersect: false },
            },
        },
    });

    fitHeight("jobs-slowest", numbers.slowest.length);
    draw("jobs-slowest", {
        type: "bar",
        data: {
            labels: numbers.slowest.map((row) => row.name),
            datasets: [
                { label: "average run time (s)", data: numbers.slowest.map((row) => row.average), backgroundColor: palette.active },
                { label: "longest (s)", data: numbers.slowest.map((row) => row.longest), backgroundColor: palette.delayed },
            ],
        },
        options: { indexAxis: "y", scales: { x: { beginAtZero: true } }, plugins: { legend: { position: "top", align: "end" } } },
    });

    fitHeight("jobs-failing", numbers.failing.length);
    draw("jobs-failing", {
        type: "bar",
        data: {
            labels: numbers.failing.map((row) => row.name),
            // Failures only: next to the completed runs of a busy name they would not show; the table has both.
            datasets: [{ label: "failed", data: numbers.failing.map((row) => row.failed), backgroundColor: palette.failed }],
        },
        options: { indexAxis: "y", scales: { x: integers }, plugins: { legend: { position: "top", align: "end" } } },
    });

    // The backlog per queue: next to the finished jobs that pile up in the table, it would not show.
    const queues = Object.keys(numbers.queues);
    fitHeight("jobs-queues", queues.length);
    draw("jobs-queues", {
        type: "bar",
        data: {
            labels: queues,
            datasets: ["waiting", "delayed", "active"].map((state) => ({
                label: state,
                data: queues.map((queue) => numbers.queues[queue][state]),
                backgroundColor: palette[state],
            })),
        },
        options: {
            indexAxis: "y",
            scales: { x: { stacked: true, ...integers }, y: { stacked: true } },
            plugins: { legend: { position: "top", align: "end" } },
        },
    });
})();
