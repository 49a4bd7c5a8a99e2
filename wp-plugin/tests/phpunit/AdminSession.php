<?php

/**
 * Logging into wp-admin over HTTP and reading forms, for the tests.
 *
 * @package KeycrmBridge\Tests
 */

final class AdminSession
{
    /** Log in and return the cookie jar path. */
    public static function login(?string $user = null, ?string $pass = null): string
    {
        $env = $GLOBALS['kcb_test_env'];
        $jar = tempnam(sys_get_temp_dir(), 'kcb-jar-');
        Http::request('GET', $env['wp_url'] . '/wp-login.php', null, [], $jar);
        $response = Http::request('POST', $env['wp_url'] . '/wp-login.php', http_build_query([
            'log' => $user ?? $env['admin_user'],
            'pwd' => $pass ?? $env['admin_pass'],
            'wp-submit' => 'Log In',
            'testcookie' => '1',
            'redirect_to' => $env['wp_url'] . '/wp-admin/',
        ]), ['Cookie: wordpress_test_cookie=WP%20Cookie%20check'], $jar);
        if ($response['status'] !== 302) {
            throw new RuntimeException('login failed: HTTP ' . $response['status']);
        }
        return $jar;
    }

    /**
     * Field names and values of the form with id $formId (inputs, textareas), as a browser would submit.
     *
     * @return array<string, string>
     */
    public static function formFields(string $html, string $formId): array
    {
        $doc = new DOMDocument();
        libxml_use_internal_errors(true);
        $doc->loadHTML('<?xml encoding="utf-8"?>' . $html);
        libxml_clear_errors();
        $xpath = new DOMXPath($doc);
        $fields = [];
        foreach ($xpath->query("//form[@id='$formId']//input[@name] | //form[@id='$formId']//textarea[@name]") as $node) {
            $type = strtolower($node->getAttribute('type'));
            if (in_array($type, ['submit', 'button', 'image'], true)) {
                continue;
            }
            if (in_array($type, ['checkbox', 'radio'], true) && !$node->hasAttribute('checked')) {
                continue;
            }
            $fields[$node->getAttribute('name')] = $node->nodeName === 'textarea' ? $node->textContent : $node->getAttribute('value');
        }
        return $fields;
    }
}
