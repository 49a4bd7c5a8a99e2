/* KeyCRM Bridge admin page: connection test, Full resync progress and its report links. Strings come translated from PHP. */
(function () {
	'use strict';
	var cfg = window.kcbAdmin;
	if (!cfg) {
		return;
	}

	function post(action, data) {
		var body = new URLSearchParams();
		body.append('action', action);
		body.append('nonce', cfg.nonce);
		Object.keys(data || {}).forEach(function (key) {
			body.append(key, data[key]);
		});
		return fetch(cfg.ajaxUrl, { method: 'POST', credentials: 'same-origin', body: body })
			.then(function (response) { return response.json(); });
	}

	function show(el, ok, text) {
		el.textContent = text;
		el.classList.remove('kcb-ok', 'kcb-error');
		el.classList.add(ok ? 'kcb-ok' : 'kcb-error');
	}

	var testButton = document.getElementById('kcb-test-connection');
	var testResult = document.getElementById('kcb-test-result');
	if (testButton && testResult) {
		testButton.addEventListener('click', function () {
			testButton.disabled = true;
			testResult.textContent = cfg.i18n.testing;
			post('kcb_test_connection', {}).then(function (reply) {
				show(testResult, !!reply.success, (reply.data && reply.data.message) || cfg.i18n.failed);
			}).catch(function () {
				show(testResult, false, cfg.i18n.failed);
			}).then(function () {
				testButton.disabled = false;
			});
		});
	}

	var resyncButton = document.getElementById('kcb-resync-start');
	var resyncStatus = document.getElementById('kcb-resync-status');
	var bar = document.getElementById('kcb-resync-progress');
	var dryRun = document.getElementById('kcb-resync-dry-run');
	var report = document.getElementById('kcb-resync-report');

	// Links (with their nonce) come from PHP once the sidecar names a report for the finished job.
	function showReport(links) {
		if (!report) {
			return;
		}
		if (!links) {
			report.hidden = true;
			return;
		}
		report.querySelector('.kcb-report-label').textContent = links.label;
		report.querySelector('#kcb-report-csv').href = links.csv;
		report.querySelector('#kcb-report-json').href = links.json;
		report.hidden = false;
	}

	function follow(id) {
		post('kcb_resync_progress', { id: id }).then(function (reply) {
			if (!reply.success) {
				show(resyncStatus, false, (reply.data && reply.data.message) || cfg.i18n.failed);
				resyncButton.disabled = false;
				return;
			}
			bar.value = reply.data.percent;
			if (reply.data.finished) {
				bar.value = 100;
				// The message opens with the phase in words ("Finished", "Failed"), translated by PHP.
				show(resyncStatus, reply.data.phase !== 'failed', reply.data.message);
				showReport(reply.data.report);
				resyncStatus.setAttribute('data-finished', '1');
				resyncButton.disabled = false;
				return;
			}
			show(resyncStatus, true, reply.data.message);
			window.setTimeout(function () { follow(id); }, 1000);
		}).catch(function () {
			show(resyncStatus, false, cfg.i18n.failed);
			resyncButton.disabled = false;
		});
	}

	if (resyncButton && resyncStatus && bar) {
		resyncButton.addEventListener('click', function () {
			resyncButton.disabled = true;
			resyncStatus.removeAttribute('data-finished');
			showReport(null);
			resyncStatus.textContent = cfg.i18n.starting;
			post('kcb_resync_start', { dry_run: dryRun && dryRun.checked ? '1' : '0' }).then(function (reply) {
				if (!reply.success) {
					show(resyncStatus, false, (reply.data && reply.data.message) || cfg.i18n.failed);
					resyncStatus.setAttribute('data-finished', '1');
					resyncButton.disabled = false;
					return;
				}
				bar.hidden = false;
				bar.value = 0;
				show(resyncStatus, true, reply.data.message);
				follow(reply.data.id);
			}).catch(function () {
				show(resyncStatus, false, cfg.i18n.failed);
				resyncButton.disabled = false;
			});
		});
		// A job still running when the page was (re)loaded: keep following it.
		if (resyncStatus.dataset.job) {
			resyncButton.disabled = true;
			follow(resyncStatus.dataset.job);
		}
	}
}());
