<?php

/**
 * Signed HTTP calls to the sidecar.
 *
 * @package KeycrmBridge
 */

namespace KeycrmBridge;

defined('ABSPATH') || exit;

/**
 * Uses wp_remote_request rather than wp_safe_remote_*: the sidecar usually listens on 127.0.0.1 at a port
 * such as 8787, which the "safe" variants refuse; the URL comes only from an admin with manage_woocommerce.
 */
final class SidecarClient
{
    public function __construct(private string $baseUrl, private string $secret)
    {
    }

    public static function fromSettings(): self
    {
        return new self(Settings::sidecarUrl(), Settings::secret());
    }

    /** @param array<int, array<string, mixed>> $events */
    public function postEvents(array $events, float $timeout): SidecarResponse
    {
        $body = (string) wp_json_encode(
            [
                'site' => mb_substr((string) home_url(), 0, 2048),
                'plugin_version' => KCB_VERSION,
                'events' => array_values($events),
            ],
            JSON_UNESCAPED_SLASHES | JSON_UNESCAPED_UNICODE | JSON_PRESERVE_ZERO_FRACTION
        );
        return self::acknowledged($this->request('POST', '/v1/events', $body, $timeout), count($events), $body);
    }

    /**
     * A 2xx counts only when it is the sidecar's 202 for exactly this batch: its event count and the
     * SHA-256 of the body we sent, echoed back. Anything else (a proxy's or a captive portal's 200,
     * `{}`, another batch's answer) leaves the events in the outbox to be sent again.
     */
    public static function acknowledged(SidecarResponse $response, int $count, string $body): SidecarResponse
    {
        if (!$response->ok()) {
            return $response;
        }
        $data = (array) $response->data;
        $hash = isset($data['batch_sha256']) && is_string($data['batch_sha256']) ? $data['batch_sha256'] : '';
        if (
            $response->status === 202 && ($data['accepted'] ?? null) === $count
            && hash_equals(hash('sha256', $body), $hash)
        ) {
            return $response;
        }
        return new SidecarResponse(
            SidecarResponse::RETRY,
            $response->status,
            $response->data,
            'HTTP ' . $response->status . ' that does not acknowledge this batch'
        );
    }

    /** @param array<string, mixed>|null $payload */
    public function call(string $method, string $path, ?array $payload, float $timeout): SidecarResponse
    {
        $body = $payload === null ? '' : (string) wp_json_encode($payload);
        return $this->request($method, $path, $body, $timeout);
    }

    /**
     * A signed GET whose answer is a file rather than JSON (the resync report, which grows with the
     * catalogue): the body goes to $file as it arrives, so it never sits whole in PHP's memory.
     * OK means a 2xx answer is in $file; otherwise the error is read from the start of $file.
     */
    public function download(string $path, string $file, float $timeout): SidecarResponse
    {
        if ($this->baseUrl === '' || $this->secret === '') {
            return new SidecarResponse(SidecarResponse::RETRY, 0, null, 'not configured');
        }
        $response = wp_remote_request($this->baseUrl . $path, $this->args('GET', $path, '', $timeout) + [
            'stream' => true,
            'filename' => $file,
        ]);
        if (is_wp_error($response)) {
            return new SidecarResponse(SidecarResponse::RETRY, 0, null, $response->get_error_message());
        }
        $status = (int) wp_remote_retrieve_response_code($response);
        if ($status >= 200 && $status < 300) {
            return new SidecarResponse(SidecarResponse::OK, $status, null, '');
        }
        return $this->failure($status, self::head($file, 65536));
    }

    private function request(string $method, string $path, string $body, float $timeout): SidecarResponse
    {
        if ($this->baseUrl === '' || $this->secret === '') {
            return new SidecarResponse(SidecarResponse::RETRY, 0, null, 'not configured');
        }
        $response = wp_remote_request($this->baseUrl . $path, $this->args($method, $path, $body, $timeout));
        if (is_wp_error($response)) {
            return new SidecarResponse(SidecarResponse::RETRY, 0, null, $response->get_error_message());
        }
        $status = (int) wp_remote_retrieve_response_code($response);
        $raw = (string) wp_remote_retrieve_body($response);
        if ($status >= 200 && $status < 300) {
            $data = json_decode($raw, true);
            if (!is_array($data)) {
                return new SidecarResponse(SidecarResponse::RETRY, $status, null, 'HTTP ' . $status . ' with a body that is not JSON');
            }
            return new SidecarResponse(SidecarResponse::OK, $status, $data, '');
        }
        return $this->failure($status, $raw);
    }

    /** @return array<string, mixed> wp_remote_request arguments of the signed call $method $path with raw body $body. */
    private function args(string $method, string $path, string $body, float $timeout): array
    {
        $headers = Signer::headers($this->secret, $method, $path, $body);
        $headers['User-Agent'] = 'keycrm-bridge-plugin/' . KCB_VERSION;
        if ($body !== '') {
            $headers['Content-Type'] = 'application/json';
        }
        return [
            'method' => $method,
            'timeout' => $timeout,
            'redirection' => 0,
            'httpversion' => '1.1',
            'headers' => $headers,
            'body' => $body === '' ? null : $body,
        ];
    }

    /** A non-2xx answer, with the sidecar's {"error": ...} when its body has one. */
    private function failure(int $status, string $raw): SidecarResponse
    {
        $data = json_decode($raw, true);
        $data = is_array($data) ? $data : null;
        $error = 'HTTP ' . $status;
        if ($data !== null && isset($data['error'])) {
            $error .= ': ' . (is_string($data['error']) ? $data['error'] : (string) wp_json_encode($data['error']));
        }
        $outcome = match (true) {
            $status === 413 => SidecarResponse::TOO_LARGE,
            $status === 400 || $status === 422 => SidecarResponse::REJECTED,
            default => SidecarResponse::RETRY,
        };
        return new SidecarResponse($outcome, $status, $data, $error);
    }

    /** The first $bytes of $file ('' when it cannot be read): enough for an error body. */
    private static function head(string $file, int $bytes): string
    {
        if (!is_file($file) || !is_readable($file)) {
            return '';
        }
        $handle = fopen($file, 'rb');
        if ($handle === false) {
            return '';
        }
        $raw = fread($handle, $bytes);
        fclose($handle);
        return is_string($raw) ? $raw : '';
    }
}
