<?php

/**
 * Why stock changes in this request: the cause every event carries.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Works out the request-wide cause once. Order causes are per item and set by EventBuffer.
 */
final class RequestContext
{
    public const SIDECAR = 'sidecar';
    public const IMPORT = 'import';
    public const REST = 'rest';
    public const MANUAL = 'manual';
    public const ORDER = 'order';
    public const ORDER_RESTORE = 'order_restore';

    private ?bool $sidecar = null;
    private bool $importing = false;

    /** Called by the product importer hook: every change in the rest of this request is an import. */
    public function markImport(): void
    {
        $this->importing = true;
    }

    /** The request is the sidecar's signed stock write (StockRoute): its hooks are the sidecar's. */
    public function markSidecar(): void
    {
        $this->sidecar = true;
    }

    public function isSidecarRequest(): bool
    {
        if ($this->sidecar === null) {
            // phpcs:ignore -- read-only marker check; the HMAC is the authentication, not a nonce.
            $marker = isset($_GET['kcb_origin']) ? sanitize_text_field(wp_unslash((string) $_GET['kcb_origin'])) : '';
            $this->sidecar = $marker !== '' && Signer::isValidOriginMarker($marker, Settings::secret());
        }
        return $this->sidecar;
    }

    /** The cause for a change that is not tied to an order item. */
    public function cause(): string
    {
        if ($this->isSidecarRequest()) {
            return self::SIDECAR;
        }
        if ($this->importing) {
            return self::IMPORT;
        }
        if (defined('REST_REQUEST') && REST_REQUEST) {
            return self::REST;
        }
        return self::MANUAL;
    }

    /** Forget what was learned; PHPUnit runs many "requests" in one process. */
    public function reset(): void
    {
        $this->sidecar = null;
        $this->importing = false;
    }
}
