<?php

/**
 * The admin page over HTTP as a logged-in user: capability, nonces, escaping, secret shown once,
 * connection test wording, sidecar status with unmatched SKUs linked, outbox, Full resync.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Settings;

final class AdminPageTest extends BridgeTestCase
{
    private static string $jar = '';

    public static function setUpBeforeClass(): void
    {
        parent::setUpBeforeClass();
        self::$jar = AdminSession::login();
    }

    private function page(): array
    {
        return Http::request('GET', self::env('wp_url') . '/wp-admin/admin.php?page=keycrm-bridge', null, [], self::$jar);
    }

    private function ajaxNonce(string $html): string
    {
        $pattern = '/var kcbAdmin = \{[^;]*?"nonce":"([0-9a-f]+)"/';
        $this->assertMatchesRegularExpression($pattern, $html);
        preg_match($pattern, $html, $m);
        return $m[1];
    }

    /** @param array<string, string> $fields */
    private function ajax(array $fields, ?string $jar = null): array
    {
        $response = Http::request('POST', self::env('wp_url') . '/wp-admin/admin-ajax.php', http_build_query($fields), [], $jar ?? self::$jar);
        $response['json'] = json_decode($response['body'], true);
        return $response;
    }

    public function testPageShowsStatusOutboxAndLinksUnmatchedSkusEscaped(): void
    {
        global $wpdb;
        $product = $this->makeSimpleProduct('AP-UNMATCHED', 1, 'Unmatched <b>bold</b>');
        self::$receiver->control(['unmatched' => [
            ['sku' => 'AP-UNMATCHED', 'product_id' => $product->get_id(), 'reason' => 'missing in KeyCRM'],
            ['sku' => '<script>alert(1)</script>', 'product_id' => 0, 'reason' => 'only in KeyCRM'],
        ]]);
        \KeycrmBridge\Outbox::add([\KeycrmBridge\EventFactory::stockSet($product, 'manual')], 'HTTP 500');

        $page = $this->page();
        $this->assertSame(200, $page['status']);
        $html = $page['body'];
        $this->assertStringContainsString('<h1>KeyCRM Bridge</h1>', $html);
        $this->assertStringContainsString('keycrm', $html, 'sync mode from the sidecar status');
        $this->assertStringContainsString('Unmatched SKUs', $html);
        $this->assertStringContainsString('post.php?post=' . $product->get_id() . '&#038;action=edit">#' . $product->get_id() . ' Unmatched &lt;b&gt;bold&lt;/b&gt;</a>', $html);
        $this->assertStringContainsString('&lt;script&gt;alert(1)&lt;/script&gt;', $html);
        $this->assertStringNotContainsString('<script>alert(1)</script>', $html);
        $this->assertMatchesRegularExpression('#Events waiting</th><td>1</td>#', $html);
        $this->assertStringContainsString('id="kcb-resync-start"', $html);
        $this->assertStringContainsString('id="kcb-test-connection"', $html);
        $this->assertSame(1, (int) $wpdb->get_var('SELECT COUNT(*) FROM ' . \KeycrmBridge\Outbox::table()));
    }

    public function testExcludedSkusAreListedEscapedAndLinked(): void
    {
        $product = $this->makeSimpleProduct('AP-EXCLUDED', 1, 'Excluded <i>one</i>');
        self::$receiver->control(['status' => ['excluded_skus' => [
            ['sku' => 'AP-EXCLUDED', 'product_id' => $product->get_id(), 'since' => time() - 120],
            ['sku' => '<img src=x onerror=alert(1)>', 'product_id' => 0, 'since' => time() - 60],
        ], 'excluded_count' => 2]]);
        try {
            $html = $this->page()['body'];
        } finally {
            self::$receiver->control(['status' => []]);
        }
        $this->assertStringContainsString('Excluded from sync</h3>', $html);
        $this->assertStringContainsString('#' . $product->get_id() . ' Excluded &lt;i&gt;one&lt;/i&gt;</a>', $html);
        $this->assertStringContainsString('&lt;img src=x onerror=alert(1)&gt;', $html);
        $this->assertStringNotContainsString('<img src=x', $html);
        $this->assertMatchesRegularExpression('#kcb-excluded-skus.*AP-EXCLUDED.*\(2 mins ago\)#s', $html);

        $none = $this->page()['body'];
        $this->assertStringContainsString('None: every product with an SKU is synced.', $none);
    }

    public function testErpSectionShowsTheLastPackageEscaped(): void
    {
        self::$receiver->control(['erp' => [
            'source' => '1c', 'jobs_waiting' => 0, 'set_aside_count' => 3,
            'last_package' => ['file' => 'offers<b>.xml', 'package' => 'changes only', 'status' => 'done',
                'at' => time() - 60, 'rows_applied' => 50, 'rows_unchanged' => 2],
            'last_failure' => ['file' => 'xxe.xml', 'error' => 'declares a DTD <!ENTITY>'],
            'set_aside' => [['reason' => 'duplicate SKU: <i>A1</i>', 'count' => 2]],
        ]]);
        try {
            $html = $this->page()['body'];
        } finally {
            self::$receiver->control(['erp' => null]);
        }
        $this->assertStringContainsString('Stock from the ERP (1C / BAS)', $html);
        $this->assertMatchesRegularExpression('#Stock rows written to KeyCRM</th><td>50</td>#', $html);
        $this->assertStringContainsString('offers&lt;b&gt;.xml (changes only)', $html);
        $this->assertStringContainsString('declares a DTD &lt;!ENTITY&gt;', $html);
        $this->assertStringContainsString('2 × duplicate SKU: &lt;i&gt;A1&lt;/i&gt;', $html);
        $this->assertStringNotContainsString('<i>A1</i>', $html);
    }

    public function testNoErpSectionOutsideErpMode(): void
    {
        $this->assertStringNotContainsString('Stock from the ERP', $this->page()['body']);
    }

    public function testSecretIsShownOnceThenHidden(): void
    {
        update_option(Settings::REVEAL, '1');
        $first = $this->page()['body'];
        $this->assertStringContainsString('id="kcb-secret-once" value="' . self::SECRET . '"', $first);
        $second = $this->page()['body'];
        $this->assertStringNotContainsString(self::SECRET, $second);
        $this->assertStringContainsString(substr(self::SECRET, -4), $second);
    }

    public function testUserWithoutManageWooCommerceIsRefused(): void
    {
        $login = 'kcb-editor-' . wp_generate_password(6, false);
        wp_insert_user(['user_login' => $login, 'user_pass' => 'editor-pass-123', 'role' => 'editor', 'user_email' => $login . '@example.com']);
        $jar = AdminSession::login($login, 'editor-pass-123');
        $page = Http::request('GET', self::env('wp_url') . '/wp-admin/admin.php?page=keycrm-bridge', null, [], $jar);
        $this->assertSame(403, $page['status']);
        $this->assertStringNotContainsString('kcb-resync-start', $page['body']);
        $nonce = wp_create_nonce('kcb_admin'); // a nonce of another user does not help
        $reply = $this->ajax(['action' => 'kcb_test_connection', 'nonce' => $nonce], $jar);
        $this->assertContains($reply['status'], [400, 403]);
    }

    public function testConnectionTestExplainsEachOutcome(): void
    {
        $nonce = $this->ajaxNonce($this->page()['body']);
        $ok = $this->ajax(['action' => 'kcb_test_connection', 'nonce' => $nonce]);
        $this->assertTrue($ok['json']['success'], $ok['body']);
        $this->assertStringContainsString('Connected', $ok['json']['data']['message']);

        update_option(Settings::SECRET, str_repeat('ab', 32));
        $bad = $this->ajax(['action' => 'kcb_test_connection', 'nonce' => $nonce]);
        $this->assertFalse($bad['json']['success']);
        $this->assertStringContainsString('shared secret', $bad['json']['data']['message']);

        update_option(Settings::URL, 'http://127.0.0.1:9');
        $down = $this->ajax(['action' => 'kcb_test_connection', 'nonce' => $nonce]);
        $this->assertFalse($down['json']['success']);
        $this->assertStringContainsString('Could not reach the sidecar at http://127.0.0.1:9', $down['json']['data']['message']);

        $forged = $this->ajax(['action' => 'kcb_test_connection', 'nonce' => 'deadbeef00']);
        $this->assertSame(403, $forged['status'], 'a wrong nonce is refused');
    }

    public function testFullResyncSaysPlainlyWhenTheSidecarHasNoResyncApiAndFollowsAJobWhenItHas(): void
    {
        $nonce = $this->ajaxNonce($this->page()['body']);
        $missing = $this->ajax(['action' => 'kcb_resync_start', 'nonce' => $nonce, 'dry_run' => '1']);
        $this->assertFalse($missing['json']['success']);
        $this->assertSame('unavailable', $missing['json']['data']['code']);
        $this->assertStringContainsString('does not offer Full resync yet', $missing['json']['data']['message']);

        self::$receiver->control(['resync' => true]);
        $started = $this->ajax(['action' => 'kcb_resync_start', 'nonce' => $nonce, 'dry_run' => '1']);
        $this->assertTrue($started['json']['success'], $started['body']);
        $id = $started['json']['data']['id'];
        $percents = [];
        $labels = [];
        $messages = [];
        do {
            $progress = $this->ajax(['action' => 'kcb_resync_progress', 'nonce' => $nonce, 'id' => $id]);
            $this->assertTrue($progress['json']['success'], $progress['body']);
            $percents[] = $progress['json']['data']['percent'];
            $labels[] = $progress['json']['data']['phase_label'];
            $messages[] = $progress['json']['data']['message'];
        } while (!$progress['json']['data']['finished'] && count($percents) < 10);
        $this->assertSame([33, 66, 100], $percents);
        $this->assertSame('done', $progress['json']['data']['phase'], 'the sidecar\'s name stays in the reply for admin.js');
        $this->assertSame(['Reading KeyCRM…', 'Reading KeyCRM…', 'Finished'], $labels);
        $this->assertMatchesRegularExpression('/^Reading KeyCRM… — 40 of 120 items, 0 errors, about \d+ seconds? left\.$/', $messages[0]);
        $this->assertSame('Finished — 120 of 120 items, 0 errors.', $messages[2]);
        foreach ($messages as $message) {
            $this->assertStringNotContainsString('planning_', $message, 'no raw phase names on the page');
        }
        $this->assertSame(['id' => $id, 'dry_run' => true], array_intersect_key($this->freshOption(Settings::RESYNC_JOB), ['id' => 1, 'dry_run' => 1]));
    }

    public function testTheReviewCountsShowWhatTheErpWillWriteInErpMode(): void
    {
        $nonce = $this->ajaxNonce($this->page()['body']);
        self::$receiver->control(['finished_resync' => 'rs-erp', 'resync_erp' => [
            'source' => '1c', 'rows_to_write' => 7, 'rows_to_write_by_warehouse' => ['1' => 5, '2' => 2],
            'rows_unchanged' => 11, 'skus_keycrm_not_read_yet' => 0,
        ]]);
        $rows = $this->ajax(['action' => 'kcb_resync_rows', 'nonce' => $nonce, 'id' => 'rs-erp']);
        $this->assertTrue($rows['json']['success'], $rows['body']);
        $counts = array_column($rows['json']['data']['counts'], 'value', 'label');
        $this->assertSame(5, $counts['ERP → KeyCRM warehouse 1: on-hand rows to be written'] ?? null, $rows['body']);
        $this->assertSame(2, $counts['ERP → KeyCRM warehouse 2: on-hand rows to be written'] ?? null);
        $this->assertSame(11, $counts['ERP → KeyCRM: rows already equal'] ?? null);
        $this->assertArrayNotHasKey('ERP → KeyCRM: SKUs not read from KeyCRM yet', $counts);

        self::$receiver->control(['finished_resync' => 'rs-plain', 'resync_erp' => null]);
        $plain = $this->ajax(['action' => 'kcb_resync_rows', 'nonce' => $nonce, 'id' => 'rs-plain']);
        $this->assertSame([], array_filter(array_column($plain['json']['data']['counts'], 'label'),
            static fn (string $l): bool => str_starts_with($l, 'ERP')), 'no ERP lines outside erp mode');
    }

    public function testResyncProgressSpeaksTheAdminsLanguage(): void
    {
        $user = get_user_by('login', self::env('admin_user'));
        self::$receiver->control(['resync' => true]);
        update_user_meta($user->ID, 'locale', 'uk');
        try {
            $nonce = $this->ajaxNonce($this->page()['body']);
            $started = $this->ajax(['action' => 'kcb_resync_start', 'nonce' => $nonce, 'dry_run' => '1']);
            $this->assertTrue($started['json']['success'], $started['body']);
            $messages = [];
            do {
                $progress = $this->ajax(['action' => 'kcb_resync_progress', 'nonce' => $nonce, 'id' => $started['json']['data']['id']]);
                $this->assertTrue($progress['json']['success'], $progress['body']);
                $messages[] = $progress['json']['data']['message'];
            } while (!$progress['json']['data']['finished'] && count($messages) < 10);
        } finally {
            update_user_meta($user->ID, 'locale', '');
        }
        $this->assertStringStartsWith('Читаємо KeyCRM… — 40 з 120 позицій, помилок: 0, лишилось близько ', $messages[0]);
        $this->assertSame('Завершено — 120 з 120 позицій, помилок: 0.', end($messages));
        $this->assertSame('Завершено', $progress['json']['data']['phase_label']);
    }

    public function testSettingsFormNeedsItsNonceAndValidatesInput(): void
    {
        $html = $this->page()['body'];
        preg_match('/name="_wpnonce" value="([0-9a-f]+)"/', $html, $m);
        $url = self::env('wp_url') . '/wp-admin/admin-post.php';
        $withoutNonce = Http::request('POST', $url, http_build_query(['action' => 'kcb_save_settings', 'kcb_sidecar_url' => 'http://evil.example']), [], self::$jar);
        $this->assertSame(403, $withoutNonce['status']);
        $this->assertSame(self::$receiver->url(), $this->freshOption(Settings::URL));

        $saved = Http::request('POST', $url, http_build_query([
            'action' => 'kcb_save_settings', '_wpnonce' => $m[1], 'kcb_sidecar_url' => 'http://127.0.0.1:8787/',
            'kcb_send_timeout' => '2', 'kcb_new_secret' => '',
        ]), [], self::$jar);
        $this->assertSame(302, $saved['status']);
        $this->assertStringContainsString('kcb_notice=saved', $saved['url']);
        $this->assertSame('http://127.0.0.1:8787', $this->freshOption(Settings::URL));
        $this->assertSame('2', $this->freshOption(Settings::TIMEOUT));

        $badUrl = Http::request('POST', $url, http_build_query([
            'action' => 'kcb_save_settings', '_wpnonce' => $m[1], 'kcb_sidecar_url' => 'javascript:alert(1)',
        ]), [], self::$jar);
        $this->assertStringContainsString('kcb_notice=bad_url', $badUrl['url']);
        $this->assertSame('http://127.0.0.1:8787', $this->freshOption(Settings::URL));
    }

    public function testSendNowFlushesTheOutbox(): void
    {
        $product = $this->makeSimpleProduct('AP-FLUSH', 4);
        \KeycrmBridge\Outbox::add([\KeycrmBridge\EventFactory::stockSet($product, 'manual')], 'HTTP 500');
        $html = $this->page()['body'];
        $this->assertMatchesRegularExpression('/name="action" value="kcb_flush_outbox">\s*<input type="hidden" id="_wpnonce" name="_wpnonce" value="([0-9a-f]+)"/', $html);
        preg_match('/name="action" value="kcb_flush_outbox">\s*<input type="hidden" id="_wpnonce" name="_wpnonce" value="([0-9a-f]+)"/', $html, $m);
        $sent = Http::request('POST', self::env('wp_url') . '/wp-admin/admin-post.php', http_build_query([
            'action' => 'kcb_flush_outbox', '_wpnonce' => $m[1],
        ]), [], self::$jar);
        $this->assertStringContainsString('kcb_notice=flushed', $sent['url']);
        $this->assertSame(0, $this->outboxCount());
        $this->assertSame(['AP-FLUSH'], array_column(self::$receiver->events(), 'sku'));
    }
}
