<?php

/**
 * The resync report download (admin-post.php?action=kcb_resync_report) over HTTP: the links appear once a
 * dry run has finished and after a reload, the signed GET reaches the receiver, the CSV/JSON come back as an
 * attachment byte for byte, capability and nonce are enforced, and every failure is a plain admin notice.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Settings;
use KeycrmBridge\Signer;

final class ResyncReportTest extends BridgeTestCase
{
    private static string $jar = '';

    public static function setUpBeforeClass(): void
    {
        parent::setUpBeforeClass();
        self::$jar = AdminSession::login();
    }

    protected function setUp(): void
    {
        parent::setUp();
        $this->setJob(null);
    }

    /**
     * Set (or with null, remove) the remembered job the way the plugin stores it. PHP-FPM workers rewrite
     * this option, so this process's option caches are dropped first or they would shadow the row.
     *
     * @param array<string, mixed>|null $job
     */
    private function setJob(?array $job): void
    {
        wp_cache_flush();
        delete_option(Settings::RESYNC_JOB);
        if ($job !== null) {
            add_option(Settings::RESYNC_JOB, $job, '', false);
        }
    }

    /** @return array{id: mixed, finished: mixed, report: mixed} */
    private function jobState(): array
    {
        $job = $this->freshOption(Settings::RESYNC_JOB);
        return ['id' => $job['id'] ?? null, 'finished' => $job['finished'] ?? null, 'report' => $job['report'] ?? null];
    }

    private function page(?string $query = null): array
    {
        $url = self::env('wp_url') . '/wp-admin/admin.php?page=keycrm-bridge' . ($query === null ? '' : '&' . $query);
        return Http::request('GET', $url, null, [], self::$jar);
    }

    /** @param array<string, string> $fields */
    private function ajax(array $fields): array
    {
        $response = Http::request('POST', self::env('wp_url') . '/wp-admin/admin-ajax.php', http_build_query($fields), [], self::$jar);
        $response['json'] = json_decode($response['body'], true);
        return $response;
    }

    private function ajaxNonce(): string
    {
        $this->assertMatchesRegularExpression('/var kcbAdmin = \{[^;]*?"nonce":"([0-9a-f]+)"/', $html = $this->page()['body']);
        preg_match('/var kcbAdmin = \{[^;]*?"nonce":"([0-9a-f]+)"/', $html, $m);
        return $m[1];
    }

    /** Start a dry run through the page's AJAX and poll it to the end, as admin.js does. */
    private function finishedDryRun(): array
    {
        self::$receiver->control(['resync' => true]);
        $nonce = $this->ajaxNonce();
        $started = $this->ajax(['action' => 'kcb_resync_start', 'nonce' => $nonce, 'dry_run' => '1']);
        $this->assertTrue($started['json']['success'], $started['body']);
        $id = $started['json']['data']['id'];
        for ($polls = 0; $polls < 10; $polls++) {
            $progress = $this->ajax(['action' => 'kcb_resync_progress', 'nonce' => $nonce, 'id' => $id]);
            $this->assertTrue($progress['json']['success'], $progress['body']);
            if ($progress['json']['data']['finished']) {
                return ['id' => $id] + $progress['json']['data'];
            }
            $this->assertNull($progress['json']['data']['report'], 'no report links while the job runs');
        }
        $this->fail('the dry run did not finish');
    }

    /** The admin-post.php URL of a report, with a real nonce of the logged-in admin (taken from the page). */
    private function reportUrl(string $id, string $format): string
    {
        $html = $this->page()['body'];
        $this->assertMatchesRegularExpression('/id="kcb-report-csv" href="[^"]*_wpnonce=([0-9a-f]+)"/', $html);
        preg_match('/id="kcb-report-csv" href="[^"]*_wpnonce=([0-9a-f]+)"/', $html, $m);
        return self::env('wp_url') . '/wp-admin/admin-post.php?' . http_build_query([
            'action' => 'kcb_resync_report', 'id' => $id, 'format' => $format, '_wpnonce' => $m[1],
        ]);
    }

    /** What the sidecar itself answers to the signed GET (the bytes the plugin must pass on). */
    private function straightFromReceiver(string $path): string
    {
        $headers = ['User-Agent: phpunit-direct'];
        foreach (Signer::headers(self::SECRET, 'GET', $path, '') as $name => $value) {
            $headers[] = $name . ': ' . $value;
        }
        $direct = Http::request('GET', self::$receiver->url() . $path, null, $headers);
        $this->assertSame(200, $direct['status'], $direct['body']);
        return $direct['body'];
    }

    /** @return string[] paths of the plan GETs the plugin made (not this test's direct ones), each checked signed */
    private function planGets(): array
    {
        $gets = array_filter(
            self::$receiver->recorded()['gets'],
            static fn($g) => str_contains($g['path'], '/plan.') && $g['user_agent'] !== 'phpunit-direct'
        );
        foreach ($gets as $get) {
            $this->assertTrue($get['signed'], 'every plan GET carries a valid signature: ' . $get['path']);
            $this->assertStringStartsWith('keycrm-bridge-plugin/', (string) $get['user_agent']);
        }
        return array_values(array_column($gets, 'path'));
    }

    /** @return string[] */
    private static function tempFiles(): array
    {
        return glob(get_temp_dir() . 'kcb-resync-*') ?: [];
    }

    /** Follow the redirect of a failed download to the admin page and return the notice's text. */
    private function noticeAfter(array $response, string $code): string
    {
        $this->assertSame(302, $response['status'], $response['body']);
        $this->assertStringContainsString('kcb_notice=' . $code, $response['url']);
        $this->assertStringNotContainsString('Warning', $response['body']);
        $page = Http::request('GET', $response['url'], null, [], self::$jar);
        $this->assertSame(200, $page['status']);
        $this->assertMatchesRegularExpression('#<div class="notice notice-error"><p>([^<]+)</p></div>#', $page['body']);
        preg_match('#<div class="notice notice-error"><p>([^<]+)</p></div>#', $page['body'], $m);
        return html_entity_decode($m[1], ENT_QUOTES);
    }

    public function testLinksAppearAfterTheDryRunAndTheCsvAndJsonStreamBackAsAttachments(): void
    {
        $before = self::tempFiles();
        $page = $this->page()['body'];
        $this->assertMatchesRegularExpression('/<p id="kcb-resync-report" class="kcb-report" hidden>/', $page, 'no links before any resync');

        $done = $this->finishedDryRun();
        $id = $done['id'];
        $this->assertSame('done', $done['phase']);
        $this->assertStringStartsWith('Report of the last dry run, finished ', $done['report']['label']);
        foreach (['csv', 'json'] as $format) {
            $query = [];
            parse_str((string) parse_url($done['report'][$format], PHP_URL_QUERY), $query);
            $this->assertSame(['action' => 'kcb_resync_report', 'id' => $id, 'format' => $format], array_diff_key($query, ['_wpnonce' => 1]));
            $this->assertMatchesRegularExpression('/^[0-9a-f]{10}$/', $query['_wpnonce'], 'the link carries a nonce');
        }
        $this->assertSame(['id' => $id, 'finished' => true, 'report' => true], $this->jobState());

        // After a reload the page offers the same job's report without asking the sidecar about the job again.
        $reloaded = $this->page()['body'];
        $this->assertMatchesRegularExpression('/<p id="kcb-resync-report" class="kcb-report"><span class="kcb-report-label">Report of the last dry run, finished /', $reloaded);
        $this->assertStringContainsString('admin-post.php?action=kcb_resync_report&#038;id=' . $id . '&#038;format=csv&#038;_wpnonce=', $reloaded);
        $this->assertStringContainsString('>Download report (CSV)</a>', $reloaded);
        $this->assertStringContainsString('>Download report (JSON)</a>', $reloaded);
        $this->assertStringNotContainsString('data-job=', $reloaded, 'a finished job is not followed again');

        $csv = Http::request('GET', $this->reportUrl($id, 'csv'), null, [], self::$jar);
        $this->assertSame(200, $csv['status'], $csv['body']);
        $this->assertSame('text/csv; charset=utf-8', $csv['headers']['content-type']);
        $this->assertSame('attachment; filename="keycrm-resync-' . $id . '.csv"', $csv['headers']['content-disposition']);
        $this->assertSame('nosniff', $csv['headers']['x-content-type-options']);
        $this->assertStringContainsString('no-store', $csv['headers']['cache-control'] ?? '');
        $this->assertSame((string) strlen($csv['body']), $csv['headers']['content-length']);
        $expected = $this->straightFromReceiver('/v1/resync/' . $id . '/plan.csv');
        $this->assertSame($expected, $csv['body'], 'byte for byte what the sidecar sent');
        $this->assertStringStartsWith("sku,action,problems,", $csv['body']);
        $this->assertStringContainsString('"Сорочка ""лляна"", розмір', $csv['body']);

        $json = Http::request('GET', $this->reportUrl($id, 'json'), null, [], self::$jar);
        $this->assertSame(200, $json['status'], $json['body']);
        $this->assertSame('application/json; charset=utf-8', $json['headers']['content-type']);
        $this->assertSame('attachment; filename="keycrm-resync-' . $id . '.json"', $json['headers']['content-disposition']);
        $this->assertSame(3, count(json_decode($json['body'], true)['items']));

        $this->assertSame(
            ['/v1/resync/' . $id . '/plan.csv', '/v1/resync/' . $id . '/plan.json'],
            $this->planGets(),
            'the plugin made one signed GET per download'
        );
        $this->assertSame($before, self::tempFiles(), 'the temporary copy is deleted after sending');
    }

    public function testALargeReportPassesByteForByte(): void
    {
        self::$receiver->control(['finished_resync' => 'rs-big', 'report_rows' => 40000]);
        $this->setJob(['id' => 'rs-big', 'dry_run' => false, 'started_at' => time()]);
        $csv = Http::request('GET', $this->reportUrl('rs-big', 'csv'), null, [], self::$jar);
        $this->assertSame(200, $csv['status']);
        $this->assertGreaterThan(3_000_000, strlen($csv['body']));
        $this->assertSame(40001, substr_count($csv['body'], "\r\n"));
        $this->assertSame(md5($this->straightFromReceiver('/v1/resync/rs-big/plan.csv')), md5($csv['body']));
        $this->assertSame((string) strlen($csv['body']), $csv['headers']['content-length']);
    }

    public function testPageReloadPicksUpAJobThatFinishedWhileNobodyWatched(): void
    {
        self::$receiver->control(['finished_resync' => 'rs-away']);
        $this->setJob(['id' => 'rs-away', 'dry_run' => false, 'started_at' => time() - 60]);
        $html = $this->page()['body'];
        $this->assertStringContainsString('Report of the last full resync, finished ', $html);
        $this->assertStringContainsString('id=rs-away&#038;format=json', $html);
        $this->assertSame(['/v1/resync/rs-away'], array_values(array_filter(
            array_column(self::$receiver->recorded()['gets'], 'path'),
            static fn($p) => str_starts_with($p, '/v1/resync/')
        )), 'the page asked the sidecar once how the job ended');
        $this->page();
        $this->assertCount(1, array_filter(
            array_column(self::$receiver->recorded()['gets'], 'path'),
            static fn($p) => str_starts_with($p, '/v1/resync/')
        ), 'and remembered it');

        // A job the sidecar no longer knows: no links, no warning, and it is not asked about again.
        $this->setJob(['id' => 'rs-forgotten', 'dry_run' => true, 'started_at' => time()]);
        $gone = $this->page()['body'];
        $this->assertMatchesRegularExpression('/<p id="kcb-resync-report" class="kcb-report" hidden>/', $gone);
        $this->assertSame(['id' => 'rs-forgotten', 'finished' => true, 'report' => false], $this->jobState());

        // A job still running: the page hands its id to admin.js, which keeps following it.
        self::$receiver->control(['resync' => true]);
        $nonce = $this->ajaxNonce();
        $started = $this->ajax(['action' => 'kcb_resync_start', 'nonce' => $nonce, 'dry_run' => '1']);
        $running = $this->page()['body'];
        $this->assertStringContainsString('data-job="' . $started['json']['data']['id'] . '"', $running);
        $this->assertMatchesRegularExpression('/<p id="kcb-resync-report" class="kcb-report" hidden>/', $running);
    }

    public function testOnlyAnAdminWithTheNonceGetsTheReport(): void
    {
        self::$receiver->control(['finished_resync' => 'rs-guarded']);
        $this->setJob(['id' => 'rs-guarded', 'dry_run' => true, 'finished' => true, 'report' => true]);
        $url = $this->reportUrl('rs-guarded', 'csv');

        $withoutNonce = Http::request('GET', remove_query_arg('_wpnonce', $url), null, [], self::$jar);
        $this->assertSame(403, $withoutNonce['status']);
        $forged = Http::request('GET', add_query_arg('_wpnonce', 'deadbeef00', $url), null, [], self::$jar);
        $this->assertSame(403, $forged['status']);

        $login = 'kcb-shopeditor-' . wp_generate_password(6, false);
        wp_insert_user(['user_login' => $login, 'user_pass' => 'editor-pass-123', 'role' => 'editor', 'user_email' => $login . '@example.com']);
        $editorJar = AdminSession::login($login, 'editor-pass-123');
        $editor = Http::request('GET', $url, null, [], $editorJar);
        $this->assertSame(403, $editor['status'], 'no manage_woocommerce, no report (even with a valid-looking link)');
        $this->assertStringNotContainsString('sku,action', $editor['body']);

        $anonymous = Http::request('GET', $url);
        $this->assertNotSame(200, $anonymous['status']);
        $this->assertStringNotContainsString('sku,action', $anonymous['body']);

        $this->assertSame([], $this->planGets(), 'nothing was fetched from the sidecar for a refused request');
        $ok = Http::request('GET', $url, null, [], self::$jar);
        $this->assertSame(200, $ok['status'], 'the same link works for the admin');
    }

    public function testFailuresComeBackAsPlainNotices(): void
    {
        $before = self::tempFiles();
        self::$receiver->control(['finished_resync' => 'rs-ok']);
        $this->setJob(['id' => 'rs-ok', 'dry_run' => true, 'finished' => true, 'report' => true]);
        $url = $this->reportUrl('rs-ok', 'csv');
        $get = fn(array $args): array => Http::request('GET', add_query_arg($args, $url), null, [], self::$jar);

        $this->assertStringContainsString('has no report for this resync', $this->noticeAfter($get(['id' => 'rs-unknown']), 'report_missing'));

        self::$receiver->control(['resync' => true]);
        $nonce = $this->ajaxNonce();
        $started = $this->ajax(['action' => 'kcb_resync_start', 'nonce' => $nonce, 'dry_run' => '1']);
        $this->assertStringContainsString('not ready yet', $this->noticeAfter($get(['id' => $started['json']['data']['id']]), 'report_not_ready'));

        $this->assertStringContainsString('not valid', $this->noticeAfter($get(['format' => 'xlsx']), 'report_unknown'));
        $this->assertStringContainsString('not valid', $this->noticeAfter($get(['id' => '../../etc/passwd']), 'report_unknown'));
        $this->assertStringContainsString('not valid', $this->noticeAfter($get(['id' => ['rs-ok']]), 'report_unknown'));

        self::$receiver->control(['mode' => '500']);
        $this->assertStringContainsString('could not produce the resync report', $this->noticeAfter($get([]), 'report_failed'));
        self::$receiver->control(['mode' => '401']);
        $this->assertStringContainsString('refused this shop\'s signature', $this->noticeAfter($get([]), 'report_refused'));
        self::$receiver->control(['mode' => 'ok']);

        update_option(Settings::URL, 'http://127.0.0.1:9');
        $down = $get([]);
        $this->assertStringContainsString('the sidecar did not answer', $this->noticeAfter($down, 'report_unreachable'));

        update_option(Settings::URL, '');
        $this->assertStringContainsString('save the settings first', $this->noticeAfter($get([]), 'not_configured'));

        $this->assertSame($before, self::tempFiles(), 'no temporary file is left behind by a failure');
    }
}
