<?php

/**
 * The quarantine list on the plugin page over HTTP: SKU, stage, reason (translated by its code,
 * else the sidecar's text) and when, escaped; Retry and Drop go to the sidecar's signed
 * POST /v1/quarantine/{id}/retry|drop only with the form's nonce, and come back with a notice.
 *
 * @package KeycrmBridge\Tests
 */

final class QuarantineViewTest extends BridgeTestCase
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
        self::$receiver->control(['status' => ['quarantine' => ['count' => 2, 'by_stage' => ['sync' => 1, 'intake' => 1], 'items' => [
            ['id' => 7, 'stage' => 'sync', 'key' => 'sku:Q-1', 'sku' => 'Q-<b>1</b>', 'reason' => 'KeyCRM rejected the stock row: bad <i>',
             'reason_code' => 'keycrm_rejected_row', 'reason_args' => ['detail' => 'bad <i>'], 'first_at' => time() - 600,
             'last_at' => time() - 300, 'attempts' => 3, 'status' => 'held'],
            ['id' => 8, 'stage' => 'intake', 'key' => 'event:x', 'sku' => null, 'reason' => 'ValueError: <script>x</script>',
             'reason_code' => 'other', 'reason_args' => [], 'first_at' => time() - 60, 'last_at' => time() - 60,
             'attempts' => 1, 'status' => 'retry'],
        ]]]]);
    }

    protected function tearDown(): void
    {
        self::$receiver->control(['status' => []]);
        parent::tearDown();
    }

    private function page(string $locale = ''): string
    {
        $user = get_user_by('login', self::env('admin_user'));
        update_user_meta($user->ID, 'locale', $locale);
        try {
            return Http::request('GET', self::env('wp_url') . '/wp-admin/admin.php?page=keycrm-bridge', null, [], self::$jar)['body'];
        } finally {
            update_user_meta($user->ID, 'locale', '');
        }
    }

    public function testItemsAreListedEscapedWithTheirButtons(): void
    {
        $html = $this->page();
        $this->assertStringContainsString('Set aside (quarantine)</h3>', $html);
        $this->assertStringContainsString('<code>Q-&lt;b&gt;1&lt;/b&gt;</code>', $html);
        $this->assertStringContainsString('syncing stock', $html);
        $this->assertStringContainsString('KeyCRM rejected the stock row: bad &lt;i&gt;', $html);
        $this->assertStringContainsString('ValueError: &lt;script&gt;x&lt;/script&gt;', $html);
        $this->assertStringNotContainsString('<script>x</script>', $html);
        $this->assertStringContainsString('3 tries', $html);
        $this->assertMatchesRegularExpression('#name="id" value="7">.*?name="op" value="retry".*?name="op" value="drop"#s', $html);
        $this->assertStringNotContainsString('name="id" value="8"', $html, 'an item already being retried has no buttons');
        $this->assertStringContainsString('retry requested', $html);

        $uk = $this->page('uk');
        $this->assertStringContainsString('KeyCRM відхилив рядок залишку: bad &lt;i&gt;', $uk);
        $this->assertStringContainsString('синхронізація залишків', $uk);
    }

    public function testRetryAndDropGoThroughTheSidecarWithTheNonce(): void
    {
        preg_match('#name="id" value="7"><input type="hidden" id="_wpnonce" name="_wpnonce" value="([0-9a-f]+)"#', $this->page(), $m);
        $this->assertNotEmpty($m, 'the row\'s form carries a nonce');
        $url = self::env('wp_url') . '/wp-admin/admin-post.php';
        $post = fn(array $fields) => Http::request('POST', $url, http_build_query(['action' => 'kcb_quarantine'] + $fields), [], self::$jar);

        $this->assertSame(403, $post(['id' => '7', 'op' => 'retry'])['status'], 'no nonce');
        $this->assertSame(403, $post(['id' => '7', 'op' => 'retry', '_wpnonce' => 'forged'])['status']);
        $this->assertStringContainsString('kcb_notice=quarantine_retry', $post(['id' => '7', 'op' => 'retry', '_wpnonce' => $m[1]])['url']);
        $this->assertStringContainsString('kcb_notice=quarantine_drop', $post(['id' => '7', 'op' => 'drop', '_wpnonce' => $m[1]])['url']);
        $this->assertStringContainsString('kcb_notice=quarantine_missing', $post(['id' => '99', 'op' => 'drop', '_wpnonce' => $m[1]])['url']);
        $this->assertStringContainsString('kcb_notice=quarantine_unknown', $post(['id' => '7', 'op' => 'delete', '_wpnonce' => $m[1]])['url']);
        $calls = array_values(array_filter(self::$receiver->recorded()['gets'], static fn($g) => ($g['method'] ?? '') === 'POST'));
        $this->assertSame(
            [['/v1/quarantine/7/retry', true], ['/v1/quarantine/7/drop', true], ['/v1/quarantine/99/drop', true]],
            array_map(static fn($g) => [$g['path'], $g['signed']], $calls)
        );
        $notice = Http::request('GET', self::env('wp_url') . '/wp-admin/admin.php?page=keycrm-bridge&kcb_notice=quarantine_retry', null, [], self::$jar)['body'];
        $this->assertStringContainsString('The item was handed back to its stage', $notice);
    }
}
