/* KeyCRM Bridge admin page: connection test, Full resync progress, Cancel, the review of a comparison and its report links. Strings come translated from PHP. */
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

	var cancelButton = document.getElementById('kcb-resync-cancel');
	var review = document.getElementById('kcb-review');
	var reviewState = { id: '', offset: 0, sku: '', total: 0 };

	function fmt(template, values) {
		var i = 0;
		return template.replace(/%(\d\$)?[sd]/g, function (m, pos) {
			var v = pos ? values[parseInt(pos, 10) - 1] : values[i++];
			return String(v);
		});
	}

	function cell(tr, text, code) {
		var td = document.createElement('td');
		if (code) {
			var c = document.createElement('code');
			c.textContent = text;
			td.appendChild(c);
		} else {
			td.textContent = text;
		}
		tr.appendChild(td);
	}

	function num(v) {
		return v === null || v === undefined ? '—' : String(v);
	}

	function loadReview() {
		if (!review || !reviewState.id) {
			return;
		}
		post('kcb_resync_rows', { id: reviewState.id, offset: reviewState.offset, sku: reviewState.sku }).then(function (reply) {
			if (!reply.success) {
				return;
			}
			var counts = document.getElementById('kcb-review-counts');
			counts.textContent = '';
			reply.data.counts.forEach(function (c) {
				var tr = document.createElement('tr');
				var th = document.createElement('th');
				th.textContent = c.label;
				tr.appendChild(th);
				cell(tr, String(c.value));
				counts.appendChild(tr);
			});
			var body = document.getElementById('kcb-review-rows');
			body.textContent = '';
			reply.data.rows.forEach(function (r) {
				var tr = document.createElement('tr');
				tr.className = 'kcb-action-' + r.action;
				cell(tr, r.sku, true);
				cell(tr, num(r.woo_stock));
				cell(tr, num(r.keycrm_sellable));
				var target = r.action === 'update_keycrm' ? r.keycrm_target : r.woo_target;
				cell(tr, fmt(cfg.i18n[r.action] || r.action, [num(target)]));
				cell(tr, [r.reason || ''].concat(r.problems || []).filter(Boolean).join('; '));
				body.appendChild(tr);
			});
			reviewState.total = reply.data.total;
			var first = reply.data.total ? reviewState.offset + 1 : 0;
			var last = reviewState.offset + reply.data.rows.length;
			document.getElementById('kcb-review-page').textContent = reply.data.total
				? fmt(cfg.i18n.page, [first, last, reply.data.total]) : cfg.i18n.noRows;
			document.getElementById('kcb-review-prev').disabled = reviewState.offset === 0;
			document.getElementById('kcb-review-next').disabled = last >= reply.data.total;
			review.hidden = false;
			review.setAttribute('data-loaded', String(Date.now()));
		});
	}

	function startReview(id) {
		reviewState = { id: id, offset: 0, sku: '', total: 0 };
		var search = document.getElementById('kcb-review-sku');
		if (search) {
			search.value = '';
		}
		loadReview();
	}

	if (review) {
		var searchTimer = null;
		document.getElementById('kcb-review-sku').addEventListener('input', function (e) {
			window.clearTimeout(searchTimer);
			searchTimer = window.setTimeout(function () {
				reviewState.sku = e.target.value.trim();
				reviewState.offset = 0;
				loadReview();
			}, 250);
		});
		document.getElementById('kcb-review-prev').addEventListener('click', function () {
			reviewState.offset = Math.max(0, reviewState.offset - 20);
			loadReview();
		});
		document.getElementById('kcb-review-next').addEventListener('click', function () {
			reviewState.offset += 20;
			loadReview();
		});
		document.getElementById('kcb-review-apply').addEventListener('click', function () {
			if (dryRun) {
				dryRun.checked = false;
			}
			review.hidden = true;
			resyncButton.click();
		});
		if (review.dataset.reviewJob) {
			startReview(review.dataset.reviewJob);
		}
	}

	if (cancelButton) {
		cancelButton.addEventListener('click', function () {
			cancelButton.disabled = true;
			resyncStatus.textContent = cfg.i18n.cancelling;
			post('kcb_resync_cancel', { id: cancelButton.dataset.job || '' }).then(function (reply) {
				show(resyncStatus, !!reply.success, (reply.data && reply.data.message) || cfg.i18n.failed);
			});
		});
	}

	function follow(id) {
		if (cancelButton) {
			cancelButton.dataset.job = id;
			cancelButton.hidden = false;
			cancelButton.disabled = false;
		}
		post('kcb_resync_progress', { id: id }).then(function (reply) {
			if (!reply.success) {
				show(resyncStatus, false, (reply.data && reply.data.message) || cfg.i18n.failed);
				resyncButton.disabled = false;
				return;
			}
			// The total grows while the listings are read: the bar never runs backwards.
			bar.value = Math.max(bar.value, reply.data.percent);
			if (reply.data.finished) {
				bar.value = reply.data.phase === 'done' ? 100 : bar.value;
				if (cancelButton) {
					cancelButton.hidden = true;
				}
				// The message opens with the phase in words ("Finished", "Failed"), translated by PHP.
				show(resyncStatus, reply.data.phase !== 'failed' && reply.data.phase !== 'cancelled', reply.data.message);
				showReport(reply.data.report);
				resyncStatus.setAttribute('data-finished', '1');
				resyncStatus.setAttribute('data-phase', reply.data.phase);
				resyncButton.disabled = false;
				if (reply.data.phase === 'done' && reply.data.dry_run && reply.data.report) {
					startReview(reply.data.id);
				}
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
			resyncStatus.removeAttribute('data-phase');
			bar.value = 0; // a new job: its own progress, from the start
			if (review) {
				review.hidden = true;
			}
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
