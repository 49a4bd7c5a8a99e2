<?php

/**
 * The one place where every hook of the plugin is registered.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

use KeycrmBridge\Admin\AdminPage;
use KeycrmBridge\Admin\OutboxNotice;
use KeycrmBridge\Admin\ProductPanel;
use KeycrmBridge\Admin\QuarantineView;
use KeycrmBridge\Admin\ResyncView;
use KeycrmBridge\Admin\ReviewView;
use KeycrmBridge\Admin\SyncNotice;
use KeycrmBridge\Cli\Commands;

defined('ABSPATH') || exit;

/**
 * Wires handlers to WordPress and WooCommerce hooks. Handlers live in ProductHooks, Dispatcher, AdminPage and its views.
 */
final class Plugin
{
    private static ?Plugin $instance = null;

    public readonly EventBuffer $buffer;
    public readonly RequestContext $context;
    public readonly ProductHooks $products;
    public readonly ProductExclusion $exclusion;
    public readonly Dispatcher $dispatcher;
    public readonly StockRoute $stockRoute;
    private ?AdminPage $admin = null;

    private function __construct(public readonly string $file)
    {
        $this->buffer = new EventBuffer();
        $this->context = new RequestContext();
        $this->products = new ProductHooks($this->buffer, $this->context);
        $this->exclusion = new ProductExclusion($this->buffer);
        $this->dispatcher = new Dispatcher($this->buffer);
        $this->stockRoute = new StockRoute($this->context);
    }

    public static function boot(string $file): self
    {
        if (self::$instance === null) {
            self::$instance = new self($file);
            self::$instance->registerHooks();
        }
        return self::$instance;
    }

    public static function instance(): self
    {
        if (self::$instance === null) {
            throw new \LogicException('KeyCRM Bridge is not booted');
        }
        return self::$instance;
    }

    /** The admin page and its views, made on the first wp-admin request that needs them. */
    public function admin(): AdminPage
    {
        return $this->admin ??= new AdminPage($this->dispatcher);
    }

    private function registerHooks(): void
    {
        register_activation_hook($this->file, [Installer::class, 'activate']);
        register_deactivation_hook($this->file, [Installer::class, 'deactivate']);
        add_action('init', [Installer::class, 'maybeUpgrade'], 5);
        add_action('init', [$this, 'loadTextDomain']);
        add_action('before_woocommerce_init', [$this, 'declareWooCommerceCompatibility']);

        // Stock: the only hooks that fire on every stock change (REST, admin, orders, creation).
        add_action('woocommerce_product_set_stock', [$this->products, 'onSetStock'], 10, 1);
        add_action('woocommerce_variation_set_stock', [$this->products, 'onSetStock'], 10, 1);

        // Orders: per-item hooks fire right after the item's set_stock; the order-level ones are a safety net.
        add_action('woocommerce_reduce_order_item_stock', [$this->products, 'onReduceOrderItemStock'], 10, 3);
        add_action('woocommerce_restore_order_item_stock', [$this->products, 'onRestoreOrderItemStock'], 10, 4);
        add_action('woocommerce_restock_refunded_item', [$this->products, 'onRestockRefundedItem'], 10, 5);
        add_action('woocommerce_reduce_order_stock', [$this, 'onReduceOrderStock'], 10, 1);
        add_action('woocommerce_restore_order_stock', [$this, 'onRestoreOrderStock'], 10, 1);

        // Products: created, updated (with the old SKU on renames), trashed, deleted.
        add_action('woocommerce_before_product_object_save', [$this->products, 'onBeforeProductSave'], 10, 1);
        add_action('woocommerce_new_product', [$this->products, 'onProductCreated'], 10, 2);
        add_action('woocommerce_new_product_variation', [$this->products, 'onProductCreated'], 10, 2);
        add_action('woocommerce_update_product', [$this->products, 'onProductUpdated'], 10, 2);
        add_action('woocommerce_update_product_variation', [$this->products, 'onProductUpdated'], 10, 2);
        add_action('post_updated', [$this->products, 'onPostUpdated'], 10, 3);
        add_action('trashed_post', [$this->products, 'onTrashToggled'], 10, 1);
        add_action('untrashed_post', [$this->products, 'onTrashToggled'], 10, 1);
        add_action('before_delete_post', [$this->products, 'onBeforeDeletePost'], 10, 2);
        add_action('woocommerce_product_import_before_process_item', [$this->products, 'onImportItem'], 10, 0);

        // Delivery: after WordPress flushed its output (priority 1), then the retry jobs.
        add_action('shutdown', [$this->products, 'flushDirty'], 999);
        add_action('shutdown', [$this->dispatcher, 'onShutdown'], 1000);
        add_action(Dispatcher::FLUSH_HOOK, [$this->dispatcher, 'runScheduledFlush']);
        add_action(Dispatcher::SWEEP_HOOK, [$this->dispatcher, 'runSweep']);
        add_action('wp_loaded', [AsyncFlush::class, 'maybeHandle'], 0);
        add_action('wp_ajax_nopriv_' . AsyncFlush::ACTION, [AsyncFlush::class, 'handle']);
        add_action('wp_ajax_' . AsyncFlush::ACTION, [AsyncFlush::class, 'handle']);
        add_filter('cron_schedules', [$this, 'addCronSchedule']);

        // The sidecar's conditional stock writes.
        add_action('rest_api_init', [$this->stockRoute, 'register']);

        // Everything else is wp-admin's (screens, form posts, AJAX, product and variation saves): a shopper's
        // request or a REST call neither registers nor loads it.
        if (is_admin()) {
            $this->registerAdminHooks();
        }

        if (defined('WP_CLI') && WP_CLI && class_exists('\WP_CLI')) {
            \WP_CLI::add_command('keycrm-bridge', new Commands($this->dispatcher));
        }
    }

    private function registerAdminHooks(): void
    {
        $admin = $this->admin();
        add_action('admin_menu', [$admin, 'registerMenu'], 99);
        add_action('admin_enqueue_scripts', [$admin, 'enqueueAssets']);
        add_action('admin_post_kcb_save_settings', [$admin->settings, 'handleSaveSettings']);
        add_action('admin_post_kcb_regenerate_secret', [$admin->settings, 'handleRegenerateSecret']);
        add_action('admin_post_kcb_flush_outbox', [$admin->outbox, 'handleFlushOutbox']);
        add_action('admin_post_' . ResyncView::REPORT_ACTION, [ResyncView::class, 'handleResyncReport']);
        add_action('admin_post_' . QuarantineView::ACTION, [QuarantineView::class, 'handle']);
        add_action('wp_ajax_kcb_test_connection', [$admin->settings, 'ajaxTestConnection']);
        add_action('wp_ajax_kcb_resync_start', [ResyncView::class, 'ajaxResyncStart']);
        add_action('wp_ajax_kcb_resync_progress', [ResyncView::class, 'ajaxResyncProgress']);
        add_action('wp_ajax_kcb_resync_rows', [ReviewView::class, 'ajaxRows']);
        add_action('wp_ajax_kcb_resync_cancel', [ReviewView::class, 'ajaxCancel']);
        add_filter('plugin_action_links_' . plugin_basename($this->file), [$admin, 'actionLinks']);
        add_action('admin_notices', [new OutboxNotice(), 'render']);
        add_action('admin_notices', [new SyncNotice(), 'render']);
        $panel = new ProductPanel();
        add_action('add_meta_boxes_product', [$panel, 'addMetaBox']);
        add_action('woocommerce_product_after_variable_attributes', [$panel, 'renderVariation'], 10, 3);
        add_action('woocommerce_process_product_meta', [$this->exclusion, 'onSaveProduct'], 10, 1);
        add_action('woocommerce_save_product_variation', [$this->exclusion, 'onSaveVariation'], 10, 2);
    }

    public function onReduceOrderStock($order): void
    {
        $this->products->onOrderStockDone($order, RequestContext::ORDER);
    }

    public function onRestoreOrderStock($order): void
    {
        $this->products->onOrderStockDone($order, RequestContext::ORDER_RESTORE);
    }

    public function loadTextDomain(): void
    {
        load_plugin_textdomain('keycrm-bridge', false, dirname(plugin_basename($this->file)) . '/languages');
    }

    /** HPOS: the plugin reads orders only through WC_Order getters handed to hooks. */
    public function declareWooCommerceCompatibility(): void
    {
        if (class_exists('\Automattic\WooCommerce\Utilities\FeaturesUtil')) {
            \Automattic\WooCommerce\Utilities\FeaturesUtil::declare_compatibility('custom_order_tables', $this->file, true);
        }
    }

    /**
     * @param array<string, array<string, mixed>> $schedules
     * @return array<string, array<string, mixed>>
     */
    public function addCronSchedule($schedules): array
    {
        $schedules = is_array($schedules) ? $schedules : [];
        $schedules[Dispatcher::SWEEP_SCHEDULE] = [
            'interval' => 300,
            // Shown only in wp-admin and WP-CLI; translating it elsewhere loaded the plugin's translations
            // on every request (WordPress reads the schedules on each page view).
            'display' => (is_admin() || (defined('WP_CLI') && WP_CLI))
                ? __('Every five minutes (KeyCRM Bridge outbox)', 'keycrm-bridge')
                : 'Every five minutes (KeyCRM Bridge outbox)',
        ];
        return $schedules;
    }

    /** Start a fresh "request" (PHPUnit drives many in one process). */
    public function resetRequestState(): void
    {
        $this->buffer->drain();
        $this->context->reset();
        $this->products->reset();
    }
}
