<?php

/**
 * What a call to the sidecar came to.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * The outcome of one call: ok, or why not, in words an admin can read.
 */
final class SidecarResponse
{
    public const OK = 'ok';
    /** Worth retrying later: unreachable, timeout, 5xx, 401, 429, garbage. */
    public const RETRY = 'retry';
    /** The batch itself is refused (400/422): retrying it unchanged cannot help. */
    public const REJECTED = 'rejected';
    /** 413: send fewer events at once. */
    public const TOO_LARGE = 'too_large';

    /** @param array<string, mixed>|null $data */
    public function __construct(
        public string $outcome,
        public int $status,
        public ?array $data,
        public string $error
    ) {
    }

    public function ok(): bool
    {
        return $this->outcome === self::OK;
    }
}
