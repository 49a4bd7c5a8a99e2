<?php

/**
 * "Don't sync this product" over HTTP and in-process: the switch on the product form (nonce, escaped),
 * saved as product meta and sent as a product.exclude event (the receiver validates it against the
 * JSON Schema); switched back sends excluded=false; a wrong nonce, a user without the capability or
 * a form without the switch change nothing; a variation's switch is saved per variation.
 *
 * @package KeycrmBridge\Tests
 */

use KeycrmBridge\Plugin;
use KeycrmBridge\ProductExclusion;

final class ProductExclusionTest extends BridgeTestCase
{
    private function editForm(int $productId, string $jar): array
    {
        $edit = Http::request('GET', self::env('wp_url') . '/wp-admin/post.php?post=' . $productId . '&action=edit', null, [], $jar);
        $this->assertSame(200, $edit['status']);
        $this->assertStringContainsString('name="kcb_sync_excluded" value="yes"', $edit['body']);
        $this->assertStringContainsString('Don&#039;t sync this product', $edit['body']);
        return AdminSession::formFields($edit['body'], 'post');
    }

    private function post(array $form, string $jar): void
    {
        $form['save'] = 'Update';
        $saved = Http::request('POST', self::env('wp_url') . '/wp-admin/post.php', http_build_query($form), [], $jar);
        $this->assertSame(302, $saved['status'], 'wp-admin redirects after saving');
    }

    /** @return array<int, array<string, mixed>> */
    private function exclusionEvents(int $productId, int $count): array
    {
        $this->waitUntil(
            fn() => count(self::ofProduct(self::$receiver->events(), $productId, 'product.exclude')) >= $count,
            15,
            "$count product.exclude events"
        );
        $this->assertReceiverSawOnlyValidBatches();
        return self::ofProduct(self::$receiver->events(), $productId, 'product.exclude');
    }

    public function testTheSwitchOnTheProductFormIsSavedAndSentBothWays(): void
    {
        $product = $this->makeSimpleProduct('EXC-FORM', 4);
        $id = $product->get_id();
        $jar = AdminSession::login();

        $form = $this->editForm($id, $jar);
        $this->assertArrayHasKey('kcb_exclude_nonce', $form);
        $this->assertArrayNotHasKey('kcb_sync_excluded', $form, 'off until switched on');
        $form['kcb_sync_excluded'] = 'yes';
        $this->post($form, $jar);
        $events = $this->exclusionEvents($id, 1);
        $this->assertSame([true, 'EXC-FORM', 'manual'], [$events[0]['excluded'], $events[0]['sku'], $events[0]['cause']]);
        wp_cache_flush();
        $this->assertTrue(ProductExclusion::isExcluded($id));

        $form = $this->editForm($id, $jar);
        $this->assertSame('yes', $form['kcb_sync_excluded'] ?? null, 'shown as switched on');
        $this->post($form, $jar);  // saved again unchanged: no second event
        unset($form['kcb_sync_excluded']);
        $this->post($form, $jar);
        $events = $this->exclusionEvents($id, 2);
        $this->assertCount(2, $events);
        $this->assertFalse($events[1]['excluded']);
        wp_cache_flush();
        $this->assertFalse(ProductExclusion::isExcluded($id));

        // A forged form: wrong nonce, or none of our fields at all.
        $form['kcb_sync_excluded'] = 'yes';
        $form['kcb_exclude_nonce'] = 'forged';
        $this->post($form, $jar);
        unset($form['kcb_sync_excluded'], $form['kcb_exclude_nonce']);
        $this->post($form, $jar);
        wp_cache_flush();
        $this->assertFalse(ProductExclusion::isExcluded($id));
        $this->assertCount(2, self::ofProduct(self::$receiver->events(), $id, 'product.exclude'));
    }

    public function testOnlyAUserWhoManagesWooCommerceMaySwitch(): void
    {
        $product = $this->makeSimpleProduct('EXC-CAP', 2);
        $id = $product->get_id();
        $editor = wp_insert_user(['user_login' => 'kcb-editor-' . wp_generate_password(6, false), 'user_pass' => wp_generate_password(), 'role' => 'editor']);
        $this->assertIsInt($editor);
        $previous = get_current_user_id();
        try {
            wp_set_current_user($editor);
            $_POST = ['kcb_sync_excluded' => 'yes', 'kcb_exclude_nonce' => wp_create_nonce('kcb_sync_exclude_' . $id)];
            Plugin::instance()->exclusion->onSaveProduct($id);
            $this->assertFalse(ProductExclusion::isExcluded($id), 'an editor without manage_woocommerce switched it');

            $admin = get_user_by('login', self::env('admin_user'));
            wp_set_current_user($admin->ID);
            $_POST['kcb_exclude_nonce'] = wp_create_nonce('kcb_sync_exclude_' . $id);
            Plugin::instance()->exclusion->onSaveProduct($id);
            $this->assertTrue(ProductExclusion::isExcluded($id));
            $buffered = self::ofProduct(Plugin::instance()->buffer->all(), $id, 'product.exclude');
            $this->assertCount(1, $buffered);
        } finally {
            $_POST = [];
            wp_set_current_user($previous);
            require_once ABSPATH . 'wp-admin/includes/user.php';
            wp_delete_user($editor);
            Plugin::instance()->resetRequestState();
        }
    }

    public function testAVariationIsSwitchedOnItsOwn(): void
    {
        $parent = new WC_Product_Variable();
        $parent->set_name('EXC variable');
        $parent->set_sku('EXC-VAR');
        $parent->save();
        $ids = [];
        foreach (['EXC-VAR-S', 'EXC-VAR-M'] as $sku) {
            $v = new WC_Product_Variation();
            $v->set_parent_id($parent->get_id());
            $v->set_sku($sku);
            $v->set_manage_stock(true);
            $v->set_stock_quantity(3);
            $v->save();
            $ids[] = $v->get_id();
        }
        Plugin::instance()->resetRequestState();
        $admin = get_user_by('login', self::env('admin_user'));
        $previous = get_current_user_id();
        wp_set_current_user($admin->ID);
        try {
            ob_start();
            (new \KeycrmBridge\Admin\ProductPanel())->renderVariation(1, [], get_post($ids[1]));
            $html = (string) ob_get_clean();
            $this->assertStringContainsString('name="kcb_sync_excluded[1]"', $html);
            $this->assertStringContainsString('name="kcb_exclude_nonce[1]"', $html);
            $_POST = [
                'kcb_sync_excluded' => [1 => 'yes'],
                'kcb_exclude_nonce' => [0 => wp_create_nonce('kcb_sync_exclude_' . $ids[0]), 1 => wp_create_nonce('kcb_sync_exclude_' . $ids[1])],
            ];
            Plugin::instance()->exclusion->onSaveVariation($ids[0], 0);
            Plugin::instance()->exclusion->onSaveVariation($ids[1], 1);
            $this->assertFalse(ProductExclusion::isExcluded($ids[0]));
            $this->assertTrue(ProductExclusion::isExcluded($ids[1]));
            // The nonce of one variation does not switch another.
            $_POST = ['kcb_sync_excluded' => [0 => 'yes'], 'kcb_exclude_nonce' => [0 => $_POST['kcb_exclude_nonce'][1]]];
            Plugin::instance()->exclusion->onSaveVariation($ids[0], 0);
            $this->assertFalse(ProductExclusion::isExcluded($ids[0]));
            Plugin::instance()->dispatcher->deliver(Plugin::instance()->buffer->drain());
            $events = self::ofProduct(self::$receiver->events(), $ids[1], 'product.exclude');
            $this->assertCount(1, $events);
            $this->assertSame(['EXC-VAR-M', $parent->get_id(), true], [$events[0]['sku'], $events[0]['parent_id'], $events[0]['excluded']]);
            $this->assertReceiverSawOnlyValidBatches();
        } finally {
            $_POST = [];
            wp_set_current_user($previous);
            Plugin::instance()->resetRequestState();
        }
    }
}
