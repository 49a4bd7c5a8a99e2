<?php

/**
 * WooCommerce's logger stand-in: wc_get_logger() with WC_Logger's level methods and log().
 *
 * Entries go to the "standin_wc_log" option (the last 200), where tests read them; the real one writes
 * files under wp-content/uploads/wc-logs or a database table, by source.
 *
 * @package KeycrmBridge\Tests
 */

// phpcs:ignoreFile -- mirrors WooCommerce's snake_case API on purpose.

final class Standin_WC_Logger
{
    /** @param array<string, mixed> $context */
    public function log($level, $message, $context = []): void
    {
        $entries = get_option('standin_wc_log', []);
        $entries = is_array($entries) ? $entries : [];
        $entries[] = [
            'level' => (string) $level,
            'message' => (string) $message,
            'source' => (string) ($context['source'] ?? ''),
            'context' => $context,
            'at' => time(),
        ];
        update_option('standin_wc_log', array_slice($entries, -200), false);
    }

    public function emergency($message, $context = []): void { $this->log('emergency', $message, $context); }
    public function alert($message, $context = []): void { $this->log('alert', $message, $context); }
    public function critical($message, $context = []): void { $this->log('critical', $message, $context); }
    public function error($message, $context = []): void { $this->log('error', $message, $context); }
    public function warning($message, $context = []): void { $this->log('warning', $message, $context); }
    public function notice($message, $context = []): void { $this->log('notice', $message, $context); }
    public function info($message, $context = []): void { $this->log('info', $message, $context); }
    public function debug($message, $context = []): void { $this->log('debug', $message, $context); }
}

function wc_get_logger(): Standin_WC_Logger
{
    static $logger = null;
    return $logger ??= new Standin_WC_Logger();
}
